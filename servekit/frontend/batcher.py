"""Per-model bounded job queue and batch forming (no HTTP here).

Two dispatch policies:

* ``adaptive`` (default): a worker that picks up a request takes whatever else is already
  queued (up to ``batch_size``) and dispatches at once when the queue is drained and no other
  worker of the model is busy. Only while other workers are busy -- i.e. under load, when more
  requests are surely on their way -- does it wait up to ``max_batch_delay`` to fill the batch.
  A lone request therefore never waits out the delay.
* ``torchserve``: TorchServe's rule -- after the first request, wait up to ``max_batch_delay``
  for the batch to fill, even when nothing else is coming.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from servekit.protocol import Prediction, WorkerRequest


@dataclass
class Job:
    request: WorkerRequest
    future: asyncio.Future[Prediction]
    is_describe: bool = False
    enqueued_at: float = field(default_factory=time.monotonic)
    batched_at: float = 0.0

    @property
    def abandoned(self) -> bool:
        """The client went away (its handler was cancelled) or it was already answered."""
        return self.future.done()


class QueueFull(Exception):
    pass


class Batcher:
    def __init__(self, capacity: int, batch_size: int, max_delay_ms: int, policy: str = "adaptive"):
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.max_delay_ms = max_delay_ms
        self.policy = policy
        self._queue: deque[Job] = deque()
        self._arrived = asyncio.Event()
        self._forming = asyncio.Lock()  # batches of one model are formed one at a time

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def remaining_capacity(self) -> int:
        return max(0, self.capacity - len(self._queue))

    def submit(self, job: Job) -> None:
        if len(self._queue) >= self.capacity:
            raise QueueFull()
        self._queue.append(job)
        self._arrived.set()

    def requeue_front(self, jobs: Iterable[Job]) -> None:
        for job in reversed(list(jobs)):
            if not job.abandoned:
                self._queue.appendleft(job)
        self._arrived.set()

    def drain(self) -> list[Job]:
        jobs = list(self._queue)
        self._queue.clear()
        return jobs

    async def next_batch(self, others_busy: Callable[[], bool]) -> list[Job]:
        async with self._forming:
            batch = [await self._take_first()]
            if batch[0].is_describe:
                return batch
            try:
                await self._fill(batch, others_busy)
            except asyncio.CancelledError:
                self.requeue_front(batch)  # a worker stopped mid-gather: lose nothing
                raise
            return batch

    async def _take_first(self) -> Job:
        while True:
            job = self._pop_live()
            if job is not None:
                return job
            self._arrived.clear()
            await self._arrived.wait()

    async def _fill(self, batch: list[Job], others_busy: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.max_delay_ms / 1000.0
        while len(batch) < self.batch_size:
            job = self._pop_live()
            if job is not None:
                if job.is_describe:  # describe always runs alone; it goes next
                    self._queue.appendleft(job)
                    return
                batch.append(job)
                continue
            if self.policy == "adaptive" and not others_busy():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._wait_arrival(remaining):
                return

    async def _wait_arrival(self, timeout: float) -> bool:
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _pop_live(self) -> Job | None:
        while self._queue:
            job = self._queue.popleft()
            if not job.abandoned:
                job.batched_at = time.monotonic()
                return job
        return None
