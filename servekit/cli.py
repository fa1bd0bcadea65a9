"""`servekit`: TorchServe's `torchserve` command, with a start that waits until the server answers.

    servekit --start --model-store model_store --models densenet161.mar
    servekit --stop
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from servekit.cli_support import ping_once, read_config_hints, split_models_argv
from servekit.version import TORCHSERVE_COMPAT_VERSION, __version__

SERVER_MARKER = "servekit.frontend.server"
START_TIMEOUT_S = 120.0


def pid_file() -> Path:
    return Path(tempfile.gettempdir()) / ".model_server.pid"


def running_pid() -> int | None:
    """The pid of a live servekit server from the pid file; removes an orphaned file."""
    path = pid_file()
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        click.echo("Removing orphan pid file.")
        path.unlink(missing_ok=True)
        return None
    return pid if SERVER_MARKER in cmdline else None


def fail(message: str) -> None:
    click.echo(message)
    sys.exit(1)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--start", "action", flag_value="start", help="Start the server (the default).")
@click.option("--stop", "action", flag_value="stop", help="Stop the running server.")
@click.option("-v", "--version", "action", flag_value="version", help="Print the version.")
@click.option("--ts-config", type=click.Path(), help="config.properties file.")
@click.option("--model-store", type=click.Path(), help="Directory holding model archives.")
@click.option("--workflow-store", type=click.Path(), help="Directory holding workflow archives.")
@click.option("--models", help="Models to load: name=file.mar, file.mar or all (space separated).")
@click.option("--log-config", type=click.Path(), help="Logging config (dictConfig YAML/JSON or INI).")
@click.option("--cpp-log-config", type=click.Path(), hidden=True)
@click.option("--foreground", is_flag=True, help="Stay attached until the server exits.")
@click.option("--ncs", "--no-config-snapshots", "ncs", is_flag=True, help="Disable config snapshots.")
@click.option("--plugins-path", "--ppath", hidden=True)
@click.option("--dt", "--disable-token-auth", "disable_token_auth", is_flag=True, help="Disable token auth.")
@click.option("--enable-model-api", is_flag=True, help="Enable register/unregister APIs.")
@click.option("--show-config", is_flag=True, help="Print the effective configuration and exit.")
def main_command(action: str | None, foreground: bool, show_config: bool, **opts: object) -> None:
    """servekit: serve PyTorch models with TorchServe's APIs and archives."""
    if action == "version":
        click.echo(f"servekit version {__version__} (TorchServe API {TORCHSERVE_COMPAT_VERSION})")
    elif show_config:
        _show_config(opts)
    elif action == "stop":
        _stop(foreground)
    else:
        _start(foreground, opts)


def _config_file(opts: dict[str, object]) -> str | None:
    path = os.environ.get("TS_CONFIG_FILE") or opts.get("ts_config")
    if path is None and Path("config.properties").is_file():
        return "config.properties"
    return str(path) if path else None


def _show_config(opts: dict[str, object]) -> None:
    from servekit.config import load_config
    from servekit.errors import ConfigError

    cli = {"model_store": opts.get("model_store"), "load_models": opts.get("models"),
           "enable_model_api": opts.get("enable_model_api"),
           "disable_token_authorization": opts.get("disable_token_auth")}
    try:
        config = load_config(_config_file(opts), cli)
    except ConfigError as exc:
        fail(f"Invalid configuration: {exc}")
    for key, value, source in config.describe():
        click.echo(f"{key} = {value}    [{source}]")


def _validate_start(opts: dict[str, object], config_file: str | None) -> None:
    if running_pid() is not None:
        fail("servekit is already running, please use servekit --stop to stop it.")
    log_config = opts.get("log_config")
    if log_config and not Path(str(log_config)).is_file():
        fail(f"--log-config file not found: {os.path.realpath(str(log_config))}")
    if config_file and not Path(config_file).is_file():
        fail(f"--ts-config file not found: {config_file}")
    store = opts.get("model_store") or read_config_hints(config_file).get("model_store")
    if not store:
        fail("Missing mandatory parameter --model-store")
    if not Path(str(store)).is_dir():
        fail(f"--model-store directory not found: {store}\n"
             f"Create it (mkdir -p {store}) or pass an existing directory with --model-store.")
    workflow_store = opts.get("workflow_store")
    if workflow_store and not Path(str(workflow_store)).is_dir():
        fail(f"--workflow-store directory not found: {workflow_store}")


def _server_command(opts: dict[str, object], config_file: str | None) -> list[str]:
    cmd = [sys.executable, "-m", SERVER_MARKER]
    for flag in ("model_store", "workflow_store", "models", "log_config"):
        if opts.get(flag):
            cmd += [f"--{flag.replace('_', '-')}", str(opts[flag])]
    if config_file:
        cmd += ["--ts-config", config_file]
    for flag in ("ncs", "disable_token_auth", "enable_model_api"):
        if opts.get(flag):
            cmd.append(f"--{flag.replace('_', '-')}")
    return cmd


def _start(foreground: bool, opts: dict[str, object]) -> None:
    config_file = _config_file(opts)
    _validate_start(opts, config_file)
    # The server keeps the terminal for its log lines, as TorchServe's does.
    proc = subprocess.Popen(_server_command(opts, config_file), stdin=subprocess.DEVNULL)
    pid_file().write_text(str(proc.pid))
    if foreground:
        _wait_foreground(proc)
        return
    _wait_until_answering(proc, config_file)


def _wait_until_answering(proc: subprocess.Popen, config_file: str | None) -> None:  # type: ignore[type-arg]
    address = read_config_hints(config_file).get("inference_address", "http://127.0.0.1:8080")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            pid_file().unlink(missing_ok=True)
            fail(f"servekit failed to start (exit status {code}); see the messages above and logs/ts_log.log.")
        if ping_once(address):
            return
        time.sleep(0.05)
    fail(f"servekit did not answer on {address} within {START_TIMEOUT_S:.0f} s; see logs/ts_log.log.")


def _wait_foreground(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    signal.signal(signal.SIGINT, lambda *_: proc.send_signal(signal.SIGINT))
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    code = proc.wait()
    pid_file().unlink(missing_ok=True)
    sys.exit(code)


def _stop(foreground: bool) -> None:
    pid = running_pid()
    if pid is None:
        click.echo("servekit is not currently running.")
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pid_file().unlink(missing_ok=True)
        click.echo("servekit already stopped.")
        return
    Path("key_file.json").unlink(missing_ok=True)
    # Unlike TorchServe we wait for the shutdown, so the ports are free when --stop returns.
    if not _wait_exit(pid, 60.0):
        click.echo("Stopping servekit took too long.")
        return
    pid_file().unlink(missing_ok=True)
    click.echo("servekit has stopped.")


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def main() -> None:
    main_command.main(args=split_models_argv(sys.argv[1:]), prog_name="servekit")
