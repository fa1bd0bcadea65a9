from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.archives import build_echo, build_tiny_classifier, write_corrupt_archives
from tests.integration.server import RunningServer, make_server


@pytest.fixture(scope="session")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Archives built once per session by servekit's archiver; servers copy what they need."""
    out = tmp_path_factory.mktemp("archives")
    build_echo(out)
    build_tiny_classifier(out, out / "work")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, archive_dir: Path) -> Iterator[RunningServer]:
    """A real servekit with `echo` (1 worker) loaded at start; tiny.mar and broken archives in its store."""
    tmp = tmp_path_factory.mktemp("server")
    store = tmp / "store"
    store.mkdir()
    for name in ("echo.mar", "tiny.mar"):
        (store / name).write_bytes((archive_dir / name).read_bytes())
    write_corrupt_archives(store, archive_dir / "tiny.mar")
    srv = make_server(tmp, store, default_workers_per_model="1", default_response_timeout="5")
    started = srv.start("echo.mar")
    assert started.returncode == 0, started.stdout + started.stderr
    yield srv
    srv.stop()
