"""MAR-INF/MANIFEST.json: TorchServe's exact bytes out, lenient parsing in (archive.md §2, §5.4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from servekit.errors import InvalidModelError
from servekit.manifest import MANIFEST_PATH, Manifest, ModelSection, read_manifest

DENSENET_JSON = """{
  "createdOn": "17/03/2025 11:20:57",
  "runtime": "python",
  "model": {
    "modelName": "densenet161",
    "serializedFile": "densenet161-8d451a50.pth",
    "handler": "image_classifier",
    "modelFile": "model.py",
    "modelVersion": "1.0"
  },
  "archiverVersion": "0.12.0"
}"""

CUSTOM_JSON = """{
  "createdOn": "02/01/2025 09:05:41",
  "runtime": "python",
  "model": {
    "modelName": "m",
    "serializedFile": "model.pt",
    "handler": "my_handler:handle_fn",
    "modelVersion": "2.0",
    "requirementsFile": "requirements.txt",
    "configFile": "model-config.yaml"
  },
  "archiverVersion": "0.12.0"
}"""


def densenet() -> Manifest:
    return Manifest(
        model=ModelSection(
            model_name="densenet161",
            serialized_file="densenet161-8d451a50.pth",
            handler="image_classifier",
            model_file="model.py",
            model_version="1.0",
        ),
        created_on="17/03/2025 11:20:57",
        archiver_version="0.12.0",
    )


def custom() -> Manifest:
    return Manifest(
        model=ModelSection(
            model_name="m",
            serialized_file="model.pt",
            handler="my_handler:handle_fn",
            model_version="2.0",
            requirements_file="requirements.txt",
            config_file="model-config.yaml",
        ),
        created_on="02/01/2025 09:05:41",
        archiver_version="0.12.0",
    )


def test_densenet_example_bytes() -> None:
    assert densenet().to_json() == DENSENET_JSON


def test_custom_handler_example_bytes() -> None:
    assert custom().to_json() == CUSTOM_JSON


def test_envelope_is_never_written_and_non_ascii_is_escaped() -> None:
    manifest = densenet()
    manifest.model.envelope = "json"
    manifest.model.model_name = "modèle"
    text = manifest.to_json()
    assert "envelope" not in text
    assert '"modelName": "mod\\u00e8le"' in text
    assert not text.endswith("\n")


def test_extensions_key_position() -> None:
    manifest = custom()
    manifest.model.extensions = {"a": 1}
    keys = list(json.loads(manifest.to_json())["model"])
    assert keys == [
        "modelName",
        "serializedFile",
        "handler",
        "modelVersion",
        "extensions",
        "requirementsFile",
        "configFile",
    ]


@pytest.mark.parametrize("text", [DENSENET_JSON, CUSTOM_JSON])
def test_round_trip(text: str) -> None:
    parsed = Manifest.from_json(text)
    assert parsed.to_json() == text
    assert Manifest.from_json(text.encode()).to_json() == text


def test_parse_reads_fields() -> None:
    manifest = Manifest.from_json(CUSTOM_JSON)
    assert manifest.runtime == "python"
    assert manifest.created_on == "02/01/2025 09:05:41"
    assert manifest.archiver_version == "0.12.0"
    assert manifest.model == custom().model


def test_lenient_parsing() -> None:
    text = json.dumps(
        {
            "description": "old archive",
            "unknownTop": [1, 2],
            "model": {
                "modelName": "x",
                "modelVersion": 1.5,
                "description": "ignored",
                "version": "ignored",
                "envelope": "json",
                "handler": {"not": "a string"},
                "extensions": {"k": [1]},
            },
        }
    )
    manifest = Manifest.from_json(text)
    assert manifest.runtime == "python"  # absent -> default
    assert manifest.created_on is None and manifest.archiver_version is None
    assert manifest.model.model_name == "x"
    assert manifest.model.model_version == "1.5"
    assert manifest.model.envelope == "json"
    assert manifest.model.handler is None
    assert manifest.model.extensions == {"k": [1]}
    manifest.validate()


def test_unknown_runtime_is_kept_and_rejected_by_validate() -> None:
    manifest = Manifest.from_json('{"runtime": "java", "model": {"modelName": "a", "modelVersion": "1"}}')
    assert manifest.runtime == "java"
    with pytest.raises(InvalidModelError, match=r"^Runtime is not defined or invalid\.$"):
        manifest.validate()


@pytest.mark.parametrize("text", ["{}", '{"model": "x"}', '{"model": null}'])
def test_missing_model_entry(text: str) -> None:
    with pytest.raises(InvalidModelError, match=r"^Missing Model entry in manifest file\.$"):
        Manifest.from_json(text)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", b"\xff\xfe\x00"])
def test_unparsable_manifest(text: str | bytes) -> None:
    with pytest.raises(InvalidModelError, match=r"^Failed to parse signature\.json\.$") as info:
        Manifest.from_json(text)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("model", "runtime", "message"),
    [
        ({"modelVersion": "1.0"}, "python", "Model name is not defined."),
        ({"modelName": "", "modelVersion": "1.0"}, "python", "Model name is not defined."),
        ({"modelName": "a"}, "python", "Model version is not defined."),
        ({"modelName": "a", "modelVersion": "1.0"}, None, "Runtime is not defined or invalid."),
        ({"modelName": "a", "modelVersion": "1.0"}, "cpp", "Runtime is not defined or invalid."),
    ],
)
def test_validation_messages(model: dict[str, str], runtime: str | None, message: str) -> None:
    manifest = Manifest.from_json(json.dumps({"runtime": runtime, "model": model}))
    with pytest.raises(InvalidModelError) as info:
        manifest.validate()
    assert info.value.message == message


@pytest.mark.parametrize("runtime", ["python", "python3", "LSP"])
def test_valid_runtimes(runtime: str) -> None:
    Manifest(ModelSection(model_name="a", model_version="1.0"), runtime=runtime).validate()


def test_read_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    (tmp_path / "MAR-INF").mkdir()
    (tmp_path / MANIFEST_PATH).write_text(DENSENET_JSON)
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest.model.model_name == "densenet161"


def test_manifest_module_does_not_import_torch() -> None:
    code = "import sys, servekit.manifest, servekit.archiver.extract; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
