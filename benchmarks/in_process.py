"""Load an archive's handler in this process and time `handle` on stdin's bytes (batch of 1).

    python benchmarks/in_process.py model_store/densenet161.mar 30 < photo.jpg
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from servekit.archiver.extract import unpack_archive
from servekit.protocol import InputParam, LoadModel, WorkerRequest
from servekit.worker.service import Service


def main() -> None:
    archive, n = Path(sys.argv[1]), int(sys.argv[2])
    image = sys.stdin.buffer.read()
    model_dir = unpack_archive(archive, Path(tempfile.mkdtemp()))
    os.chdir(model_dir)
    threads = os.cpu_count() or 1
    service = Service.load(LoadModel(archive.stem, str(model_dir), _handler(model_dir), torch_threads=threads))
    request = [WorkerRequest(str(uuid.uuid4()), {}, [InputParam("body", None, image)])]
    service.predict(request)
    samples = []
    for _ in range(n):
        start = time.monotonic()
        result = service.predict(request)
        samples.append(time.monotonic() - start)
        assert result.code == 200, result.message
    qs = statistics.quantiles(samples, n=100)
    print(f"handler.handle, batch 1: p50 {qs[49] * 1000:.1f} ms  p90 {qs[89] * 1000:.1f} ms  (n={n})")


def _handler(model_dir: Path) -> str:
    from servekit.manifest import read_manifest

    manifest = read_manifest(model_dir)
    assert manifest is not None and manifest.model.handler
    return manifest.model.handler


if __name__ == "__main__":
    main()
