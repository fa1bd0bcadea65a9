"""`MAR-INF/MANIFEST.json`: the one metadata file of a model archive, in both directions.

The archiver writes it (`Manifest.to_json`) byte for byte as TorchServe's archiver does, so
archives built by either tool load in the other. The server reads it (`read_manifest`)
leniently, as TorchServe's frontend does, and validates it after applying its in-memory
overrides (`Manifest.validate`). The file itself is never rewritten by the server.

This module must stay free of torch: the frontend imports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servekit.errors import InvalidModelError

MANIFEST_PATH = "MAR-INF/MANIFEST.json"
RUNTIMES = ("python", "python3", "LSP")
CREATED_ON_FORMAT = "%d/%m/%Y %H:%M:%S"

# (attribute, JSON key) in the order TorchServe's archiver writes them. `envelope` is absent on
# purpose: it only ever lives in the server's in-memory copy.
_MODEL_KEYS = (
    ("model_name", "modelName"),
    ("serialized_file", "serializedFile"),
    ("handler", "handler"),
    ("model_file", "modelFile"),
    ("model_version", "modelVersion"),
    ("extensions", "extensions"),
    ("requirements_file", "requirementsFile"),
    ("config_file", "configFile"),
)
_STRING_FIELDS = tuple(attr for attr, _ in _MODEL_KEYS if attr != "extensions") + ("envelope",)


@dataclass
class ModelSection:
    """The `model` object of the manifest."""

    model_name: str | None = None
    serialized_file: str | None = None
    handler: str | None = None
    model_file: str | None = None
    model_version: str | None = None
    requirements_file: str | None = None
    config_file: str | None = None
    extensions: Any = None
    envelope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        values = ((key, getattr(self, attr)) for attr, key in _MODEL_KEYS)
        return {key: value for key, value in values if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSection:
        keys = dict(_MODEL_KEYS, envelope="envelope")
        section = cls(extensions=data.get("extensions"))
        for attr in _STRING_FIELDS:
            setattr(section, attr, _as_str(data.get(keys[attr])))
        return section


@dataclass
class Manifest:
    """The whole manifest. Plain (mutable) dataclasses so the server can apply its overrides."""

    model: ModelSection = field(default_factory=ModelSection)
    runtime: str = "python"
    created_on: str | None = None
    archiver_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.created_on is not None:
            data["createdOn"] = self.created_on
        data["runtime"] = self.runtime
        data["model"] = self.model.to_dict()
        if self.archiver_version is not None:
            data["archiverVersion"] = self.archiver_version
        return data

    def to_json(self) -> str:
        """The exact text TorchServe's archiver writes (indent 2, ASCII, no trailing newline)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse leniently: unknown keys are ignored, scalars are read as strings."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            # TorchServe's frontend reports every manifest parse failure with this text.
            raise InvalidModelError("Failed to parse signature.json.") from exc
        if not isinstance(data, dict):
            raise InvalidModelError("Failed to parse signature.json.")
        model = data.get("model")
        if not isinstance(model, dict):
            raise InvalidModelError("Missing Model entry in manifest file.")
        runtime = data.get("runtime", "python")
        return cls(
            model=ModelSection.from_dict(model),
            # An unknown runtime is kept as read; validate() rejects it after overrides.
            runtime=_as_str(runtime) or "",
            created_on=_as_str(data.get("createdOn")),
            archiver_version=_as_str(data.get("archiverVersion")),
        )

    def validate(self) -> None:
        """Raise `InvalidModelError` with TorchServe's messages (archive.md §5.4)."""
        if not self.model.model_name:
            raise InvalidModelError("Model name is not defined.")
        if not self.model.model_version:
            raise InvalidModelError("Model version is not defined.")
        if self.runtime not in RUNTIMES:
            raise InvalidModelError("Runtime is not defined or invalid.")


def read_manifest(model_dir: Path) -> Manifest | None:
    """Read `<model_dir>/MAR-INF/MANIFEST.json`; `None` when the directory has none."""
    path = Path(model_dir) / MANIFEST_PATH
    if not path.is_file():
        return None
    return Manifest.from_json(path.read_bytes())


def _as_str(value: Any) -> str | None:
    # Hand-written manifests sometimes carry numbers ("modelVersion": 1.0); TorchServe's Java
    # parser reads those as their text, so do we. Objects and lists are not names: drop them.
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
