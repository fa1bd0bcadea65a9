"""The server process: three aiohttp listeners over one ModelManager.

Run by the `servekit` launcher as `python -m servekit.frontend.server ...`. This process never
imports torch; workers are forked by the zygote (servekit.worker.zygote).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from servekit.config import Config, Listener, load_config
from servekit.errors import ConfigError, InvalidKeyError, ServekitError
from servekit.frontend.app_keys import CONFIG, MANAGER, METRICS, TOKENS
from servekit.frontend.auth import AUTH_FAILED, TokenStore
from servekit.frontend.http import Handler, common_middleware, path_segments
from servekit.frontend.inference import inference_app
from servekit.frontend.launcher import create_launcher
from servekit.frontend.logs import setup_logging
from servekit.frontend.management import management_app
from servekit.frontend.metrics import FrontendMetrics, metrics_app
from servekit.frontend.models import ModelManager
from servekit.frontend.startup import load_startup_models
from servekit.version import __version__

log = logging.getLogger("servekit.server")
SERVER_MARKER = "servekit.frontend.server"


def _auth_middleware(kind: str, tokens: TokenStore) -> object:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        seg = path_segments(request)
        public = not seg or seg[1:] == ["api-description"] or seg == ["", "token"]
        if not public and not tokens.check(kind, request.headers.get("Authorization")):
            raise InvalidKeyError(AUTH_FAILED)
        return await handler(request)

    return check


def build_apps(config: Config, manager: ModelManager, tokens: TokenStore | None) -> dict[str, web.Application]:
    metrics = FrontendMetrics()
    inference_mw: list = [common_middleware]  # type: ignore[type-arg]
    management_mw: list = [common_middleware]  # type: ignore[type-arg]
    if tokens is not None:
        management_mw.append(_auth_middleware("management", tokens))
        # Decided for servekit: inference is open on loopback; elsewhere it needs its token.
        if not config.listener("inference").is_loopback:
            inference_mw.append(_auth_middleware("inference", tokens))
    apps = {
        "inference": inference_app(inference_mw, config.max_request_size),
        "management": management_app(management_mw),
    }
    if config.enable_metrics_api:
        apps["metrics"] = metrics_app(metrics, [common_middleware])
    for app in apps.values():
        app[MANAGER], app[METRICS], app[CONFIG], app[TOKENS] = manager, metrics, config, tokens
    return apps


async def _bind(app: web.Application, listener: Listener) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site: web.BaseSite
    if listener.scheme == "unix":
        assert listener.path is not None
        Path(listener.path).unlink(missing_ok=True)
        site = web.UnixSite(runner, listener.path)
    else:
        site = web.TCPSite(runner, listener.host, listener.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"Failed to bind to address: {listener.url} ({exc.strerror or exc})") from None
    return runner


async def serve(config: Config) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="servekit-"))  # private (0700): sockets and unpacked models
    launcher = await create_launcher(config.worker_start_method)
    manager = ModelManager(config, launcher, workdir)
    tokens = None
    if not config.disable_token_authorization:
        tokens = TokenStore.create(Path.cwd() / "key_file.json", config.token_expiration_min)
        log.info("Token authorization is enabled; keys are in %s", tokens.key_file)
    runners: list[web.AppRunner] = []
    try:
        apps = build_apps(config, manager, tokens)
        # As TorchServe: startup models are registered before the listeners bind, so a healthy
        # /ping means they are known (their workers keep loading in the background).
        await load_startup_models(manager, config)
        for kind, app in apps.items():
            runners.append(await _bind(app, config.listener(kind)))
        print("Model server started.", flush=True)
        await _wait_for_stop()
        log.info("Shutting down")
        return 0
    finally:
        # Models first: requests still waiting get their 503 before the listeners close.
        await manager.shutdown()
        for runner in runners:
            await runner.cleanup()
        await launcher.close()
        shutil.rmtree(workdir, ignore_errors=True)
        log.info("servekit stopped.")


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=SERVER_MARKER)
    parser.add_argument("--ts-config")
    parser.add_argument("--model-store")
    parser.add_argument("--workflow-store")
    parser.add_argument("--models")
    parser.add_argument("--log-config")
    parser.add_argument("--ncs", action="store_true")
    parser.add_argument("--disable-token-auth", action="store_true")
    parser.add_argument("--enable-model-api", action="store_true")
    return parser.parse_args(argv)


def _banner(config: Config, log_dir: Path) -> None:
    log.info("servekit version: %s", __version__)
    log.info("Current directory: %s", os.getcwd())
    log.info("Python executable: %s", sys.executable)
    log.info("Config file: %s", config.config_file or "N/A")
    for kind in ("inference", "management", "metrics"):
        log.info("%s address: %s", kind.capitalize(), config.listener(kind).url)
    log.info("Model Store: %s", config.model_store or "N/A")
    log.info("Initial Models: %s", config.load_models or "N/A")
    log.info("Log dir: %s", log_dir)
    log.info("Model API enabled: %s", str(config.enable_model_api).lower())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    cli = {"model_store": args.model_store, "workflow_store": args.workflow_store, "load_models": args.models,
           "enable_model_api": args.enable_model_api, "disable_token_authorization": args.disable_token_auth}
    try:
        config = load_config(args.ts_config, cli)
        log_dir = setup_logging(config.log_level, args.log_config)
        _banner(config, log_dir)
        return _run(config)
    except (ConfigError, ServekitError) as exc:
        print(f"Invalid configuration: {exc}", file=sys.stderr, flush=True)
        return 1


def _run(config: Config) -> int:
    try:
        import uvloop

        return uvloop.run(serve(config))
    except ImportError:
        return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
