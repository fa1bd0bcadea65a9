"""Registered models, their versions and default versions (no HTTP, no processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servekit.errors import ConflictError, InvalidModelVersionError, ModelNotFoundError, ModelVersionNotFoundError

if TYPE_CHECKING:
    from servekit.frontend.pool import WorkerPool


@dataclass
class ModelVersion:
    name: str
    version: str
    url: str
    model_dir: Path
    manifest: Any  # servekit.manifest.Manifest
    handler: str
    runtime: str = "python"
    batch_size: int = 1
    max_batch_delay: int = 100
    response_timeout: int = 120
    startup_timeout: int = 120
    min_workers: int = 0
    max_workers: int = 0
    job_queue_size: int = 100
    max_retry_timeout: int = 300
    device_type: str = "cpu"
    loaded_at_startup: bool = False
    downloaded_file: Path | None = None
    pool: "WorkerPool | None" = field(default=None, repr=False)


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._defaults: dict[str, str] = {}

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(f"Model not found: {name}")
        key = self._defaults[name] if version is None else version
        if key not in versions:
            raise ModelVersionNotFoundError(f"Model version: {version} does not exist for model: {name}")
        return versions[key]

    def versions(self, name: str) -> list[ModelVersion]:
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(f"Model not found: {name}")
        return [versions[v] for v in sorted(versions)]

    def is_default(self, model: ModelVersion) -> bool:
        return self._defaults.get(model.name) == model.version

    def add(self, model: ModelVersion) -> None:
        versions = self._models.setdefault(model.name, {})
        if model.version in versions:
            raise ConflictError(f"Model version {model.version} is already registered for model {model.name}")
        versions[model.version] = model
        self._defaults.setdefault(model.name, model.version)

    def check_removable(self, model: ModelVersion) -> None:
        if self.is_default(model) and len(self._models[model.name]) > 1:
            raise InvalidModelVersionError(f"Cannot remove default version for model {model.name}")

    def remove(self, model: ModelVersion) -> None:
        versions = self._models.get(model.name, {})
        versions.pop(model.version, None)
        if not versions:
            self._models.pop(model.name, None)
            self._defaults.pop(model.name, None)

    def set_default(self, name: str, version: str) -> None:
        if name not in self._models:
            raise ModelNotFoundError(f"Model not found: {name}")
        if version not in self._models[name]:
            raise ModelVersionNotFoundError(f"Model version {version} does not exist for model {name}")
        self._defaults[name] = version

    def defaults(self) -> list[ModelVersion]:
        return [self._models[name][self._defaults[name]] for name in sorted(self._models)]

    def all(self) -> list[ModelVersion]:
        return [m for name in sorted(self._models) for m in self.versions(name)]
