"""servekit-archiver: layouts, staging rules, formats and one-line errors (archive.md §1-§4)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from servekit.archiver import ModelArchiverConfig, ModelArchiverError, generate_model_archive, plan
from servekit.archiver.extract import link_model_directory, unpack_archive
from servekit.archiver.plan import handler_source
from servekit.archiver.progress import StreamProgress
from servekit.manifest import MANIFEST_PATH, read_manifest

FORMATS = ["default", "zip-store", "tgz", "no-archive"]
ERROR_PREFIX = "servekit-archiver: error: "


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model project in tmp_path (also the cwd, so relative paths work as on a shell)."""
    monkeypatch.chdir(tmp_path)
    files = {
        "model.py": "class Net:\n    pass\n",
        "weights/model.pth": "WEIGHTS",
        "src/my_handler.py": "def handle_fn(data, context):\n    return data\n",
        "src/custom.py": "from ts.torch_handler.base_handler import BaseHandler\n",
        "requirements.txt": "numpy\n",
        "model-config.yaml": "minWorkers: 1\n",
        "index_to_name.json": '{"0": "cat"}',
        "assets/vocab.txt": "hello",
        "assets/tok/merges.txt": "h e",
        "assets/tok/__pycache__/x.cpython-311.pyc": "bytecode",
        "assets/tok/.svn/entries": "svn",
        "assets/__MACOSX/._vocab.txt": "fork",
        "assets/.git/HEAD": "ref",
        "assets/.hidden": "kept",
        "assets/stray.pyc": "kept too",
        "labels/a.json": "A",
        "labels/b.json": "B",
        "labels/c.txt": "C",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def full_config(src: Path, fmt: str = "default", **overrides: object) -> ModelArchiverConfig:
    config = ModelArchiverConfig(
        model_name="densenet",
        handler="src/my_handler:handle_fn",
        version="1.0",
        serialized_file="weights/model.pth",
        model_file="model.py",
        extra_files="index_to_name.json,assets,labels/*.json",
        export_path=str(src / "out"),
        archive_format=fmt,
        requirements_file="requirements.txt",
        config_file="model-config.yaml",
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def full_cli_args(fmt: str) -> list[str]:
    return [
        "--model-name", "densenet", "-v", "1.0",
        "--serialized-file", "weights/model.pth", "--model-file", "model.py",
        "--handler", "src/my_handler:handle_fn",
        "--extra-files", "index_to_name.json,assets,labels/*.json",
        "-r", "requirements.txt", "-c", "model-config.yaml",
        "--export-path", "out", "--archive-format", fmt,
    ]  # fmt: skip


EXPECTED_FILES = {
    "model.py": "class Net:\n    pass\n",
    "model.pth": "WEIGHTS",
    "my_handler.py": "def handle_fn(data, context):\n    return data\n",
    "index_to_name.json": '{"0": "cat"}',
    "vocab.txt": "hello",
    "tok/merges.txt": "h e",
    ".hidden": "kept",
    "stray.pyc": "kept too",
    "a.json": "A",
    "b.json": "B",
    "requirements.txt": "numpy\n",
    "model-config.yaml": "minWorkers: 1\n",
}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "servekit.archiver.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def tree(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_PATH
    }


def open_output(output: Path, fmt: str, models_root: Path) -> Path:
    if fmt == "no-archive":
        return link_model_directory(output, models_root)
    return unpack_archive(output, models_root)


def check_model_dir(model_dir: Path) -> None:
    assert tree(model_dir) == EXPECTED_FILES
    manifest = read_manifest(model_dir)
    assert manifest is not None
    assert manifest.runtime == "python"
    assert manifest.archiver_version == "0.12.0"
    assert manifest.created_on is not None
    assert manifest.model.model_name == "densenet"
    assert manifest.model.model_version == "1.0"
    assert manifest.model.handler == "my_handler:handle_fn"
    assert manifest.model.serialized_file == "model.pth"
    assert manifest.model.model_file == "model.py"
    assert manifest.model.requirements_file == "requirements.txt"
    assert manifest.model.config_file == "model-config.yaml"
    manifest.validate()


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_api(src: Path, fmt: str) -> None:
    output = generate_model_archive(full_config(src, fmt))
    suffix = {"default": ".mar", "zip-store": ".mar", "tgz": ".tar.gz", "no-archive": ""}[fmt]
    assert output == src / "out" / f"densenet{suffix}"
    check_model_dir(open_output(output, fmt, src / "models"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_cli(src: Path, fmt: str) -> None:
    result = run_cli(*full_cli_args(fmt), cwd=src)
    assert result.returncode == 0, result.stderr
    # The export directory did not exist: created after a warning.
    assert "WARNING - Export directory (out) does not exist. Creating..." in result.stderr
    name = {"default": "densenet.mar", "zip-store": "densenet.mar", "tgz": "densenet.tar.gz"}.get(fmt, "densenet")
    check_model_dir(open_output(src / "out" / name, fmt, src / "models"))


def test_manifest_file_is_exact_json(src: Path) -> None:
    output = generate_model_archive(full_config(src))
    with zipfile.ZipFile(output) as archive:
        text = archive.read(MANIFEST_PATH).decode()
    assert not text.endswith("\n")
    parsed = json.loads(text)
    assert list(parsed) == ["createdOn", "runtime", "model", "archiverVersion"]
    assert list(parsed["model"]) == [
        "modelName", "serializedFile", "handler", "modelFile", "modelVersion", "requirementsFile", "configFile",
    ]  # fmt: skip
    assert text == json.dumps(parsed, indent=2)


@pytest.mark.parametrize(("fmt", "compression"), [("default", zipfile.ZIP_DEFLATED), ("zip-store", zipfile.ZIP_STORED)])
def test_zip_compression_and_entry_order(src: Path, fmt: str, compression: int) -> None:
    output = generate_model_archive(full_config(src, fmt))
    with zipfile.ZipFile(output) as archive:
        infos = archive.infolist()
    assert {info.compress_type for info in infos} == {compression}
    assert infos[-1].filename == MANIFEST_PATH
    assert not any(info.is_dir() for info in infos)  # files only, no directory entries
    assert [info.filename for info in infos[:3]] == ["model.py", "model.pth", "my_handler.py"]


def test_tgz_prefix_and_manifest_last(src: Path) -> None:
    output = generate_model_archive(full_config(src, "tgz"))
    with tarfile.open(output, "r:gz") as archive:
        members = archive.getmembers()
    assert all(member.name.startswith("densenet/") for member in members)
    assert all(member.isfile() for member in members)
    assert members[-1].name == f"densenet/{MANIFEST_PATH}"


# -- handlers ------------------------------------------------------------------------------


def test_builtin_handler_is_not_copied(src: Path) -> None:
    (src / "image_classifier.py").write_text("local file is ignored for built-in names")
    config = ModelArchiverConfig("m", "image_classifier", "1.0", serialized_file="weights/model.pth", export_path="out")
    output = generate_model_archive(config)
    with zipfile.ZipFile(output) as archive:
        assert archive.namelist() == ["model.pth", MANIFEST_PATH]
        assert json.loads(archive.read(MANIFEST_PATH))["model"]["handler"] == "image_classifier"


def test_module_function_handler_copies_module(src: Path) -> None:
    config = ModelArchiverConfig("m", "src/my_handler:handle_fn", "1.0", export_path="out")
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        assert archive.namelist() == ["my_handler.py", MANIFEST_PATH]
        assert json.loads(archive.read(MANIFEST_PATH))["model"]["handler"] == "my_handler:handle_fn"


def test_py_handler_copied_as_is(src: Path) -> None:
    config = ModelArchiverConfig("m", "src/custom.py", "1.0", export_path="out")
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        assert archive.namelist() == ["custom.py", MANIFEST_PATH]
        assert json.loads(archive.read(MANIFEST_PATH))["model"]["handler"] == "custom.py"


def test_py_handler_with_function_is_a_missing_file(src: Path) -> None:
    # As in TorchServe: "x.py:fn" names a file literally called "x.py:fn".
    config = ModelArchiverConfig("m", "src/custom.py:fn", "1.0", export_path="out")
    with pytest.raises(ModelArchiverError, match="handler file 'src/custom.py:fn' does not exist"):
        generate_model_archive(config)


def test_unknown_handler_name_hints_at_builtins(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "imag_classifier", cwd=src)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{ERROR_PREFIX}handler file 'imag_classifier.py' does not exist")
    assert "image_classifier" in result.stderr


@pytest.mark.parametrize(
    ("handler", "runtime", "expected"),
    [
        ("image_classifier", "python", None),
        ("base_handler", "python3", None),
        ("src/h:fn", "python", "src/h.py"),
        ("h", "python", "h.py"),
        ("h.py", "python", "h.py"),
        ("h.py:fn", "python", "h.py:fn"),
        ("densenet_handler", "python", "densenet_handler.py"),  # not TorchServe built-in; not shipped here
        ("BaseHandler", "LSP", None),
        ("lib/handler", "LSP", "lib/handler.dylib" if sys.platform == "darwin" else "lib/handler.so"),
    ],
)
def test_handler_source(handler: str, runtime: str, expected: str | None) -> None:
    assert handler_source(handler, runtime) == expected


def test_optional_builtin_shipped_by_servekit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "densenet_handler.py").write_text("")
    monkeypatch.setattr(plan, "_SERVEKIT_HANDLERS_DIR", tmp_path / "handlers")
    monkeypatch.chdir(tmp_path)
    assert handler_source("densenet_handler") is None
    (tmp_path / "densenet_handler.py").write_text("a local file wins")
    assert handler_source("densenet_handler") == "densenet_handler.py"


# -- extra files ---------------------------------------------------------------------------


def test_extra_files_dir_merge_glob_and_skipped_dirs(src: Path) -> None:
    config = ModelArchiverConfig("m", "base_handler", "1.0", extra_files="assets,labels/*.json", export_path="out")
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        names = archive.namelist()
    assert sorted(names) == sorted(
        [".hidden", "stray.pyc", "vocab.txt", "tok/merges.txt", "a.json", "b.json", MANIFEST_PATH]
    )


def test_extra_dot_directory_given_directly_is_merged(src: Path) -> None:
    # The merged directory's own name never appears, so a hidden directory passed by name counts.
    config = ModelArchiverConfig("m", "base_handler", "1.0", extra_files="assets/.git", export_path="out")
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        assert archive.namelist() == ["HEAD", MANIFEST_PATH]


def test_last_copied_wins_for_duplicate_basenames(src: Path) -> None:
    (src / "other").mkdir()
    (src / "other" / "model.pth").write_text("FROM EXTRA FILES")
    config = ModelArchiverConfig(
        "m",
        "base_handler",
        "1.0",
        serialized_file="weights/model.pth",
        extra_files="other/model.pth",
        export_path="out",
    )
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        assert archive.namelist() == ["model.pth", MANIFEST_PATH]
        assert archive.read("model.pth") == b"FROM EXTRA FILES"


def test_unmatched_glob_only_warns(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--extra-files", "*.nothing", cwd=src)
    assert result.returncode == 0, result.stderr
    assert "WARNING - Given wildcard pattern did not match any file: *.nothing" in result.stderr


def test_extra_files_are_not_stripped_before_the_existence_check(src: Path) -> None:
    result = run_cli(
        "--model-name", "m", "-v", "1", "--handler", "base_handler", "--extra-files", "model.py, requirements.txt",
        cwd=src,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == f"{ERROR_PREFIX}extra file ' requirements.txt' does not exist\n"


def test_user_manifest_in_extra_files_is_replaced(src: Path) -> None:
    (src / "bundle" / "MAR-INF").mkdir(parents=True)
    (src / "bundle" / "MAR-INF" / "MANIFEST.json").write_text("{}")
    config = ModelArchiverConfig("m", "base_handler", "1.0", extra_files="bundle", export_path="out")
    with zipfile.ZipFile(generate_model_archive(config)) as archive:
        assert archive.namelist() == [MANIFEST_PATH]
        assert json.loads(archive.read(MANIFEST_PATH))["model"]["modelName"] == "m"


def test_symlinked_inputs_are_packed_as_files(src: Path) -> None:
    os.symlink(src / "weights" / "model.pth", src / "link.pth")
    config = ModelArchiverConfig("m", "base_handler", "1.0", serialized_file="link.pth", export_path="out",
                                 archive_format="tgz")  # fmt: skip
    with tarfile.open(generate_model_archive(config)) as archive:
        member = archive.getmember("m/link.pth")
        assert member.isfile()
        extracted = archive.extractfile(member)
        assert extracted is not None and extracted.read() == b"WEIGHTS"


# -- errors: one line, exit status 1 --------------------------------------------------------


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX)
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_serialized_file(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--serialized-file", "x.pth", cwd=src)
    assert_one_line_error(result, "serialized file 'x.pth' does not exist")


def test_invalid_model_name(src: Path) -> None:
    result = run_cli("--model-name", "-bad name", "-v", "1", "--handler", "base_handler", cwd=src)
    assert_one_line_error(result, "model name '-bad name' contains special characters")
    assert r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$" in result.stderr


@pytest.mark.parametrize("name", ["a b", "_x", "x/y", "x\n", "é"])
def test_model_name_regex(src: Path, name: str) -> None:
    with pytest.raises(ModelArchiverError, match="contains special characters"):
        generate_model_archive(ModelArchiverConfig(name, "base_handler", "1.0", export_path="out"))


def test_existing_output_needs_force(src: Path) -> None:
    args = ("--model-name", "m", "-v", "1", "--handler", "base_handler", "--serialized-file", "weights/model.pth")
    assert run_cli(*args, cwd=src).returncode == 0
    result = run_cli(*args, cwd=src)
    assert_one_line_error(result, f"{src / 'm.mar'} already exists. Please specify --force/-f option")
    (src / "weights" / "model.pth").write_text("NEW")
    forced = run_cli(*args, "--force", cwd=src)
    assert forced.returncode == 0, forced.stderr
    assert f"WARNING - Overwriting {src / 'm.mar'} ..." in forced.stderr
    with zipfile.ZipFile(src / "m.mar") as archive:
        assert archive.read("model.pth") == b"NEW"


def test_failed_forced_build_keeps_old_output(src: Path) -> None:
    config = ModelArchiverConfig("m", "base_handler", "1.0", serialized_file="weights/model.pth", export_path="out")
    output = generate_model_archive(config)
    before = output.read_bytes()
    config.force, config.serialized_file = True, "missing.pth"
    with pytest.raises(ModelArchiverError, match="serialized file 'missing.pth' does not exist"):
        generate_model_archive(config)
    assert output.read_bytes() == before
    assert sorted(p.name for p in output.parent.iterdir()) == ["m.mar"]  # no partial files


def test_export_path_is_a_file(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--export-path", "model.py", cwd=src)
    assert_one_line_error(result, "Given export-path model.py is not a directory.")


def test_missing_extra_file(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--extra-files", "nope.txt", cwd=src)
    assert_one_line_error(result, "extra file 'nope.txt' does not exist")


def test_unknown_archive_format_is_a_usage_error(src: Path) -> None:
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--archive-format", "rar", cwd=src)
    assert result.returncode == 2
    assert "invalid choice: 'rar'" in result.stderr


def test_required_flags(src: Path) -> None:
    result = run_cli("--model-name", "m", cwd=src)
    assert result.returncode == 2
    assert "--handler" in result.stderr and "-v/--version" in result.stderr


def test_no_archive_force_copies_over_existing_tree(src: Path) -> None:
    config = ModelArchiverConfig("m", "base_handler", "1.0", serialized_file="weights/model.pth",
                                 export_path="out", archive_format="no-archive")  # fmt: skip
    output = generate_model_archive(config)
    (output / "stale.txt").write_text("survives")
    config.force, config.serialized_file = True, "model.py"
    generate_model_archive(config)
    assert sorted(tree(output)) == ["model.pth", "model.py", "stale.txt"]
    manifest = read_manifest(output)
    assert manifest is not None and manifest.model.serialized_file == "model.py"


# -- progress for large files ---------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_in_place(src: Path) -> None:
    (src / "big.pth").write_bytes(os.urandom(3 * 1024 * 1024))
    stream = _Tty()
    config = ModelArchiverConfig("m", "base_handler", "1.0", serialized_file="big.pth", export_path="out")
    generate_model_archive(config, progress=StreamProgress(stream, threshold=1024 * 1024))
    text = stream.getvalue()
    assert text.startswith("\rPacking big.pth: 0% (0/3 MiB)")
    assert "\rPacking big.pth: 33% (1/3 MiB)" in text
    assert text.endswith("\rPacking big.pth: 100% (3/3 MiB)\n")


def test_progress_without_a_terminal_prints_start_and_done(src: Path) -> None:
    (src / "big.pth").write_bytes(os.urandom(3 * 1024 * 1024))
    stream = io.StringIO()
    config = ModelArchiverConfig("m", "base_handler", "1.0", serialized_file="big.pth", export_path="out",
                                 model_file="model.py", archive_format="tgz")  # fmt: skip
    generate_model_archive(config, progress=StreamProgress(stream, threshold=1024 * 1024))
    assert stream.getvalue() == "Packing big.pth: started (3 MiB)\nPacking big.pth: done (3 MiB)\n"


def test_cli_reports_progress_for_files_over_64_mib(src: Path) -> None:
    with open(src / "huge.pth", "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: cheap to create, fast to compress
    result = run_cli("--model-name", "m", "-v", "1", "--handler", "base_handler", "--serialized-file", "huge.pth",
                     "--archive-format", "zip-store", cwd=src)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "Packing huge.pth: started (65 MiB)\nPacking huge.pth: done (65 MiB)\n"
    with zipfile.ZipFile(src / "m.mar") as archive:
        assert archive.getinfo("huge.pth").file_size == 65 * 1024 * 1024
