"""Model lifecycle: resolve an archive, register it, scale its workers, unregister it.

This is the one place that turns management requests into registry and pool changes; it knows
nothing about HTTP. Archive unpacking runs in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from servekit.archiver.extract import link_model_directory, remove_model_directory, unpack_archive
from servekit.config import Config
from servekit.errors import BadRequestError, InternalServerError, ModelNotFoundError, ServekitError
from servekit.frontend.batcher import Batcher
from servekit.frontend.launcher import Launcher
from servekit.frontend.model_settings import settings_for
from servekit.frontend.pool import PortCounter, WorkerPool, wait_loaded
from servekit.frontend.registry import ModelRegistry, ModelVersion
from servekit.frontend.worker import WorkerConfig
from servekit.manifest import Manifest, read_manifest
from servekit.protocol import LoadModel, LoadResult

log = logging.getLogger("servekit.models")
URL_PATTERN = re.compile(r"^(file|https?)://", re.IGNORECASE)


@dataclass
class RegisterRequest:
    url: str
    model_name: str | None = None
    handler: str | None = None
    runtime: str | None = None
    batch_size: int | None = None
    max_batch_delay: int | None = None
    initial_workers: int | None = None
    synchronous: bool = True
    response_timeout: int | None = None
    startup_timeout: int | None = None


@dataclass(frozen=True)
class Outcome:
    """Result of a management operation: an HTTP status and the status text for the body."""

    status: int
    message: str


class ModelManager:
    def __init__(self, config: Config, launcher: Launcher, workdir: Path):
        self.config = config
        self.registry = ModelRegistry()
        self._launcher = launcher
        self._models_root = workdir / "models"
        self._sock_dir = workdir
        self._ports = PortCounter(config.initial_worker_port)

    # --- register -------------------------------------------------------------------------

    async def register(self, req: RegisterRequest, loaded_at_startup: bool = False) -> Outcome:
        model_dir = await self._materialize(req.url)
        try:
            model = self._describe_archive(req, model_dir, loaded_at_startup)
            self.registry.add(model)
        except BaseException:
            remove_model_directory(model_dir, self._models_root)
            raise
        if model.min_workers <= 0:
            return Outcome(200, f'Model "{model.name}" Version: {model.version} registered with 0 initial workers. '
                                "Use scale workers API to add workers for the model.")
        return await self._start_initial_workers(model, req.synchronous)

    async def _materialize(self, url: str) -> Path:
        store = self.config.model_store
        if not store:
            raise ModelNotFoundError("Model store has not been configured.")
        if not url:
            raise ModelNotFoundError("empty url")
        if ".." in url:
            raise ModelNotFoundError(f"Relative path is not allowed in url: {url}")
        if URL_PATTERN.match(url):
            raise BadRequestError(f"Registering from a URL is not supported yet: {url}")
        candidate = Path(store) / Path(url).name
        if candidate.is_file():
            return await asyncio.to_thread(unpack_archive, candidate, self._models_root)
        for directory in (Path(url), candidate):
            if directory.is_dir():
                return await asyncio.to_thread(link_model_directory, directory, self._models_root)
        raise ModelNotFoundError(f"Model not found at: {url}")

    def _describe_archive(self, req: RegisterRequest, model_dir: Path, startup: bool) -> ModelVersion:
        manifest = read_manifest(model_dir) or Manifest()
        section = manifest.model
        if req.model_name:
            section.model_name = req.model_name
        elif not section.model_name and startup:
            section.model_name = derive_model_name(req.url)
        if req.runtime:
            manifest.runtime = req.runtime
        section.handler = req.handler or section.handler or self.config.default_service_handler
        section.model_version = section.model_version or "1.0"
        manifest.validate()
        if not section.handler:
            raise BadRequestError("Handler is not defined: pass handler= or set default_service_handler.")
        settings = settings_for(self.config, req, manifest, model_dir, startup)
        return ModelVersion(
            name=section.model_name or "", version=section.model_version, url=req.url, model_dir=model_dir,
            manifest=manifest, handler=section.handler, runtime=manifest.runtime,
            loaded_at_startup=startup, **settings,
        )

    async def _start_initial_workers(self, model: ModelVersion, synchronous: bool) -> Outcome:
        result = await self._scale_and_wait(model, synchronous)
        if isinstance(result, Outcome):
            return result
        if result.code != 200:
            log.error("Failed to start workers for %s: %s\n%s", model.name, result.message, result.detail)
            await self._remove(model)
            raise _start_failure(model.name, model.version, result.code)
        return Outcome(200, f'Model "{model.name}" Version: {model.version} registered with {model.min_workers} initial workers')

    async def _scale_and_wait(self, model: ModelVersion, synchronous: bool) -> Outcome | LoadResult:
        """Reconcile the pool: 202 when asynchronous, else the first load failure, a 206, or a 200 result."""
        new = await self._scale(model, model.min_workers, model.max_workers)
        if not synchronous:
            return Outcome(202, "Processing worker updates...")
        result = await wait_loaded(new, model.startup_timeout)
        return Outcome(206, "Workers scaling in progress...") if result is None else result

    # --- scale ------------------------------------------------------------------------------

    async def scale(self, name: str, version: str | None, min_w: int, max_w: int, synchronous: bool) -> Outcome:
        if max_w < min_w:
            raise BadRequestError("max_worker cannot be less than min_worker.")
        if min_w < 0:
            raise InternalServerError(f"Invalid worker count: {min_w}")
        model = self.registry.get(name, version)
        model.min_workers, model.max_workers = min_w, max_w
        result = await self._scale_and_wait(model, synchronous)
        if isinstance(result, Outcome):
            return result
        if result.code != 200:
            raise _start_failure(name, version, result.code)
        suffix = f", version: {version}" if version else ""
        return Outcome(200, f"Workers scaled to {min_w} for model: {name}{suffix}")

    async def _scale(self, model: ModelVersion, min_w: int, max_w: int) -> list:  # type: ignore[type-arg]
        if model.pool is None:
            model.pool = self._new_pool(model)
        return await model.pool.scale(min_w, max_w, self._torch_threads(max_w))

    def _torch_threads(self, workers: int) -> int:
        if self.config.worker_torch_threads > 0:
            return self.config.worker_torch_threads
        # Split the cores between this model's workers so they never oversubscribe the machine.
        return max(1, (os.cpu_count() or 1) // max(1, workers))

    def _new_pool(self, model: ModelVersion) -> WorkerPool:
        batcher = Batcher(model.job_queue_size, model.batch_size, model.max_batch_delay, self.config.batch_dispatch)
        load = LoadModel(
            model_name=model.name, model_path=str(model.model_dir), handler=model.handler,
            batch_size=max(1, model.batch_size), gpu=None, envelope=self.config.service_envelope or None,
            limit_max_image_pixels=self.config.limit_max_image_pixels,
        )
        config = WorkerConfig(
            name=f"{model.name}_{model.version}", load=load, model_dir=str(model.model_dir),
            env=self._worker_env(), python_path=_python_path(model), response_timeout_s=model.response_timeout,
            startup_timeout_s=model.startup_timeout, max_retry_timeout_s=model.max_retry_timeout,
            max_response_size=self.config.max_response_size,
        )
        return WorkerPool(config, batcher, self._launcher, self._ports, self._sock_dir,
                          self.config.unregister_model_timeout)

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.blacklist_env_vars:
            banned = re.compile(self.config.blacklist_env_vars)
            env = {k: v for k, v in env.items() if not banned.fullmatch(k)}
        env["TS_DECODE_INPUT_REQUEST"] = str(self.config.decode_input_request).lower()
        env.setdefault("TS_IPEX_ENABLE", "false")
        env.setdefault("TS_IPEX_GPU_ENABLE", "false")
        return env

    # --- unregister / default ---------------------------------------------------------------

    async def unregister(self, name: str, version: str | None) -> Outcome:
        model = self.registry.get(name, version)
        self.registry.check_removable(model)
        await self._remove(model)
        return Outcome(200, f'Model "{name}" unregistered')

    async def _remove(self, model: ModelVersion) -> None:
        self.registry.remove(model)
        if model.pool is not None:
            await model.pool.stop_all(self.config.unregister_model_timeout)
            unavailable = ServekitError(f'Model "{model.name}" was unregistered', 503, "ServiceUnavailableException")
            for job in model.pool.batcher.drain():
                if not job.abandoned:
                    job.future.set_exception(unavailable)
        remove_model_directory(model.model_dir, self._models_root)

    def set_default(self, name: str, version: str) -> Outcome:
        self.registry.set_default(name, version)
        return Outcome(200, f'Default version successfully updated for model "{name}" to "{version}"')

    def healthy(self) -> bool:
        for model in self.registry.defaults():
            if model.pool is not None and model.pool.healthy_count() < model.min_workers:
                return False
        return True

    async def shutdown(self) -> None:
        for model in self.registry.all():
            try:
                await self._remove(model)
            except ServekitError as exc:
                log.error("Failed to unregister %s: %s", model.name, exc.message)


def _start_failure(name: str, version: str | None, code: int) -> ServekitError:
    # TorchServe prints a missing version literally as "null"; 413 from a worker is shown as 507.
    return ServekitError(f"Failed to start workers for model {name} version: {version or 'null'}",
                         507 if code == 413 else code)


def _python_path(model: ModelVersion) -> list[str]:
    paths = [os.path.realpath(model.model_dir)]
    if model.model_dir.is_symlink():
        paths.append(str(model.model_dir.parent))
    module_part = model.handler.split(":", 1)[0]
    if ":" in model.handler and "/" in module_part:
        paths.insert(0, os.path.dirname(module_part))
    return paths


def derive_model_name(url: str) -> str:
    """TorchServe's fallback name for startup models whose archive names none."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if ".mar" in name or ".model" in name:
        name = name[: name.rfind(".")]
    return re.sub(r"\W", "_", name)
