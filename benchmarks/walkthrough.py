"""Start-up, scale-up, memory and single-request latency of one model, servekit vs in-process.

    python benchmarks/walkthrough.py --store model_store --archive densenet161.mar --image photo.jpg

Prints: `servekit --start` -> healthy, -> first worker READY, scale-up of one worker to READY
(fork and spawn start methods), p50/p90/p99 of sequential predictions over HTTP next to the same
archive's handler called in-process, and frontend / worker memory. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.http_client import call  # noqa: E402
from tests.integration.server import make_server, wait_until  # noqa: E402


def percentiles(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100)
    return f"p50 {qs[49] * 1000:.1f} ms  p90 {qs[89] * 1000:.1f} ms  p99 {qs[98] * 1000:.1f} ms  (n={len(samples)})"


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, USS) in KiB: USS counts only pages private to the process (what forking saves)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def serve_and_measure(store: Path, archive: str, image: bytes, n: int, start_method: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="skbench-"))
    server = make_server(tmp, store, default_workers_per_model="1", worker_start_method=start_method)
    name = archive.rsplit(".", 1)[0]
    t0 = time.monotonic()
    assert server.start(archive).returncode == 0, (server.cwd / "console.log").read_text()[-2000:]
    healthy = time.monotonic() - t0

    def describe() -> dict:  # type: ignore[type-arg]
        return call("GET", server.url("management", f"/models/{name}"), headers=server.auth).json()[0]

    wait_until(lambda: describe()["workers"][0]["status"] == "READY", timeout=300, interval=0.01)
    ready = time.monotonic() - t0
    t1 = time.monotonic()
    scaled = call("PUT", server.url("management", f"/models/{name}?min_worker=2&synchronous=true"),
                  headers=server.auth)
    scale_up = time.monotonic() - t1
    assert scaled.status == 200, scaled.body
    call("PUT", server.url("management", f"/models/{name}?min_worker=1&synchronous=true"), headers=server.auth)
    url = server.url("inference", f"/predictions/{name}")
    call("POST", url, image)  # warm-up
    samples = []
    for _ in range(n):
        s = time.monotonic()
        reply = call("POST", url, image, headers={"Content-Type": "application/octet-stream"})
        samples.append(time.monotonic() - s)
        assert reply.status == 200, reply.body
    front_pid = server.server_pid()
    worker_pid = describe()["workers"][0]["pid"]
    print(f"[{start_method}] servekit --start -> healthy: {healthy:.2f} s; -> worker READY: {ready:.2f} s; "
          f"scale-up of one worker to READY: {scale_up:.2f} s")
    print(f"[{start_method}] HTTP predict, 1 client: {percentiles(samples)}")
    if front_pid:
        rss, uss = memory_kib(front_pid)
        print(f"[{start_method}] frontend RSS {rss / 1024:.0f} MiB, USS {uss / 1024:.0f} MiB")
    rss, uss = memory_kib(worker_pid)
    print(f"[{start_method}] worker RSS {rss / 1024:.0f} MiB, USS (unique) {uss / 1024:.0f} MiB")
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def in_process(store: Path, archive: str, image: bytes, n: int) -> None:
    """The same archive's handler called directly: the floor for the served latency."""
    out = subprocess.run([sys.executable, str(Path(__file__).parent / "in_process.py"), str(store / archive),
                          str(n)], input=image, capture_output=True, check=True)
    print("[in-process] " + out.stdout.decode().strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--archive", required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    image = args.image.read_bytes()
    in_process(args.store, args.archive, image, args.n)
    for method in ("fork", "spawn"):
        serve_and_measure(args.store.resolve(), args.archive, image, args.n, method)


if __name__ == "__main__":
    main()
