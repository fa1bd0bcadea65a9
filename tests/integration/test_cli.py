"""The `servekit` launcher's friendly failures, with the real command."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.server import make_server


def test_missing_model_store_is_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path, tmp_path / "no_such_store")
    result = server.start()
    assert result.returncode == 1
    assert "--model-store directory not found" in result.stdout and "mkdir -p" in result.stdout


def test_port_in_use_exits_with_the_reason(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    server = make_server(tmp_path, store)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", server.ports["management"]))
        blocker.listen(1)
        result = server.start()
    assert result.returncode == 1
    assert "Failed to bind to address" in result.stdout and "address already in use" in result.stdout
    assert "servekit failed to start" in result.stdout
    assert server.server_pid() is None  # no stale pid file
    assert not list((tmp_path / "tmp").glob("servekit-*"))  # nothing left behind


def test_stop_when_not_running(tmp_path: Path) -> None:
    server = make_server(tmp_path, tmp_path)
    result = server.servekit("--stop")
    assert result.returncode == 0 and result.stdout.strip() == "servekit is not currently running."


def test_frontend_never_imports_torch() -> None:
    code = ("import sys, servekit, servekit.frontend.server, servekit.cli; "
            "assert 'torch' not in sys.modules, 'the frontend imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
