"""The densenet161 walk-through of a TorchServe user's first hour, end to end with real commands:
servekit-archiver -> servekit --start -> predict -> register/scale/describe/unregister -> servekit --stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.archives import build_tiny_classifier
from tests.integration.http_client import call
from tests.integration.server import ARCHIVER, RunningServer, make_server, pid_alive, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "image_classifier"


@pytest.fixture(scope="module")
def densenet_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("densenet")
    weights = work / "densenet161.pth"
    subprocess.run([sys.executable, str(EXAMPLE / "densenet_161" / "make_weights.py"), str(weights)], check=True)
    store = work / "model_store"
    result = subprocess.run(
        [ARCHIVER, "--model-name", "densenet161", "--version", "1.0",
         "--model-file", str(EXAMPLE / "densenet_161" / "model.py"), "--serialized-file", str(weights),
         "--export-path", str(store), "--extra-files", str(EXAMPLE / "index_to_name.json"),
         "--handler", "image_classifier"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    build_tiny_classifier(store, work / "tiny")
    return store


def test_walkthrough(densenet_store: Path, tmp_path: Path, photo_jpeg: bytes) -> None:
    server = make_server(tmp_path, densenet_store, default_workers_per_model="1")
    started_at = time.monotonic()
    started = server.start("densenet161.mar")
    assert started.returncode == 0, started.stdout
    print(f"servekit --start -> healthy: {time.monotonic() - started_at:.2f} s")
    try:
        _predict_densenet(server, photo_jpeg)
        _second_model_lifecycle(server, photo_jpeg)
        again = server.start()  # a second start is refused while one runs
        assert again.returncode == 1 and "already running" in again.stdout
    finally:
        pid = server.server_pid()
        stopped = server.servekit("--stop", timeout=90)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert pid is not None and wait_until(lambda: not pid_alive(pid), timeout=10)
    assert not list((tmp_path / "tmp").glob("servekit-*")), "the server left its private directory behind"
    assert server.servekit("--stop").stdout.strip() == "servekit is not currently running."


def _predict_densenet(server: RunningServer, photo_jpeg: bytes) -> None:
    reply = call("PUT", server.url("inference", "/predictions/densenet161"), photo_jpeg, timeout=300)
    assert reply.status == 200, reply.body
    top5 = reply.json()
    labels = __import__("json").loads((EXAMPLE / "index_to_name.json").read_text()).values()
    assert len(top5) == 5 and set(top5) <= set(labels)
    probabilities = list(top5.values())
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001


def _second_model_lifecycle(server: RunningServer, photo_jpeg: bytes) -> None:
    reply = call("POST", server.url("management", "/models?url=tiny.mar&model_name=other&initial_workers=1"),
                 headers=server.auth)
    assert reply.status == 200, reply.body
    for count in (2, 1):
        scaled = call("PUT", server.url("management", f"/models/other?min_worker={count}&synchronous=true"),
                      headers=server.auth)
        assert scaled.status == 200 and scaled.json()["status"] == f"Workers scaled to {count} for model: other"
        workers = call("GET", server.url("management", "/models/other"), headers=server.auth).json()[0]["workers"]
        assert len(workers) == count and all(w["pid"] > 0 and w["status"] == "READY" for w in workers)
    for model in ("other", "densenet161"):
        assert call("POST", server.url("inference", f"/predictions/{model}"), photo_jpeg).status == 200
    pid = workers[0]["pid"]
    assert call("DELETE", server.url("management", "/models/other"), headers=server.auth).status == 200
    assert wait_until(lambda: not pid_alive(pid), timeout=10)
