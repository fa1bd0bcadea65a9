"""Start and stop a real `servekit` process on free ports, in its own working directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVEKIT = str(Path(sys.executable).parent / "servekit")
ARCHIVER = str(Path(sys.executable).parent / "servekit-archiver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    cwd: Path
    store: Path
    env: dict[str, str]
    ports: dict[str, int]
    extra_properties: dict[str, str] = field(default_factory=dict)

    def url(self, kind: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[kind]}{path}"

    @property
    def management_token(self) -> str:
        keys = json.loads((self.cwd / "key_file.json").read_text())
        return str(keys["management"]["key"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.management_token}"}

    def servekit(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run the real `servekit` command. Its output goes to a file, not a pipe: the server
        inherits the launcher's stdout (as TorchServe's does), so a pipe would never reach EOF."""
        log = self.cwd / "console.log"
        with open(log, "a+") as out:
            start = out.tell()
            proc = subprocess.run([SERVEKIT, *args], cwd=self.cwd, env=self.env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
            out.seek(start)
            proc.stdout = out.read()
        return proc

    def start(self, *models: str, extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        args = ["--start", "--ncs", "--ts-config", str(self.cwd / "config.properties"),
                "--model-store", str(self.store), *extra_args]
        if models:
            args += ["--models", *models]
        return self.servekit(*args)

    def server_pid(self) -> int | None:
        pid_file = Path(self.env["TMPDIR"]) / ".model_server.pid"
        return int(pid_file.read_text()) if pid_file.exists() else None

    def stop(self) -> None:
        pid = self.server_pid()
        self.servekit("--stop", timeout=90)
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def make_server(tmp: Path, store: Path, **properties: str) -> RunningServer:
    cwd = tmp / "cwd"
    tmpdir = tmp / "tmp"
    cwd.mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(exist_ok=True)
    ports = {kind: free_port() for kind in ("inference", "management", "metrics")}
    lines = [f"{kind}_address=http://127.0.0.1:{port}" for kind, port in ports.items()]
    lines += [f"{k}={v}" for k, v in properties.items()]
    (cwd / "config.properties").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, TMPDIR=str(tmpdir))
    return RunningServer(cwd, store, env, ports, dict(properties))


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def copy_archive(src: Path, store: Path) -> None:
    shutil.copy(src, store / src.name)
