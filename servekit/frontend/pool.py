"""The worker slots of one model version: scaling up and down, waiting for loads, health."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace
from pathlib import Path

from servekit.frontend.batcher import Batcher
from servekit.frontend.launcher import Launcher
from servekit.frontend.worker import Worker, WorkerConfig
from servekit.protocol import LoadResult

log = logging.getLogger("servekit.pool")


class PortCounter:
    """Worker ids are TorchServe-style port numbers from one server-wide, never-reused counter."""

    def __init__(self, first: int):
        self._next = itertools.count(first)

    def take(self) -> int:
        return next(self._next)


class WorkerPool:
    def __init__(self, config: WorkerConfig, batcher: Batcher, launcher: Launcher, ports: PortCounter, sock_dir: Path,
                 stop_timeout_s: float = 120.0):
        self.config = config
        self._stop_timeout_s = stop_timeout_s
        self.batcher = batcher
        self._launcher = launcher
        self._ports = ports
        self._sock_dir = sock_dir
        self.workers: list[Worker] = []

    def healthy_count(self) -> int:
        return sum(1 for w in self.workers if w.healthy)

    async def scale(self, min_workers: int, max_workers: int, torch_threads: int) -> list[Worker]:
        """Reconcile to [min, max] like TorchServe: start missing slots, stop the newest extras."""
        self.config = replace(self.config, load=replace(self.config.load, torch_threads=torch_threads))
        new = [self._start_worker() for _ in range(min_workers - len(self.workers))]
        extras = self.workers[max_workers:] if max_workers < len(self.workers) else []
        self.workers = self.workers[: len(self.workers) - len(extras)] if extras else self.workers
        if extras:
            await asyncio.gather(*(w.stop(self._stop_timeout_s) for w in extras))
        return new

    def _start_worker(self) -> Worker:
        worker = Worker(
            port=self._ports.take(), config=self.config, batcher=self.batcher,
            launcher=self._launcher, sock_dir=self._sock_dir, others_busy=lambda: False,
        )
        worker.others_busy = lambda: any(w.busy for w in self.workers if w is not worker)
        self.workers.append(worker)
        worker.start()
        return worker

    async def stop_all(self, timeout_s: float) -> bool:
        workers, self.workers = self.workers, []
        results = await asyncio.gather(*(w.stop(timeout_s) for w in workers))
        return all(results)


async def wait_loaded(workers: list[Worker], timeout_s: float) -> LoadResult | None:
    """First failure among the new workers, a 200 when all loaded, or None on timeout."""
    pending = {w.first_load for w in workers}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while pending:
        done, pending = await asyncio.wait(pending, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return None
        for fut in done:
            if fut.result().code != 200:
                return fut.result()
    return LoadResult(200, "loaded")
