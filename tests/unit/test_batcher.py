"""Batch forming: sizes, delays, the adaptive policy, describe jobs, abandoned and re-queued jobs."""

from __future__ import annotations

import asyncio
import time

import pytest

from servekit.frontend.batcher import Batcher, Job, QueueFull
from servekit.protocol import WorkerRequest


def job(name: str, describe: bool = False) -> Job:
    return Job(WorkerRequest(name, {}, []), asyncio.get_running_loop().create_future(), is_describe=describe)


def names(batch: list[Job]) -> list[str]:
    return [j.request.request_id for j in batch]


async def test_full_batch_forms_at_once_from_queue() -> None:
    batcher = Batcher(capacity=10, batch_size=3, max_delay_ms=5000)
    for n in "abcd":
        batcher.submit(job(n))
    assert names(await batcher.next_batch(lambda: False)) == ["a", "b", "c"]
    assert batcher.pending == 1


async def test_lone_request_is_dispatched_without_waiting_the_delay() -> None:
    batcher = Batcher(capacity=10, batch_size=8, max_delay_ms=1000, policy="adaptive")
    batcher.submit(job("a"))
    started = time.monotonic()
    assert names(await batcher.next_batch(lambda: False)) == ["a"]
    assert time.monotonic() - started < 0.05


async def test_torchserve_policy_waits_the_full_delay() -> None:
    batcher = Batcher(capacity=10, batch_size=8, max_delay_ms=150, policy="torchserve")
    batcher.submit(job("a"))
    started = time.monotonic()
    assert names(await batcher.next_batch(lambda: False)) == ["a"]
    assert time.monotonic() - started >= 0.14


async def test_adaptive_waits_for_more_while_other_workers_are_busy() -> None:
    batcher = Batcher(capacity=10, batch_size=2, max_delay_ms=1000, policy="adaptive")
    batcher.submit(job("a"))
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, batcher.submit, job("b"))
    assert names(await batcher.next_batch(lambda: True)) == ["a", "b"]


async def test_describe_runs_alone_and_goes_next() -> None:
    batcher = Batcher(capacity=10, batch_size=4, max_delay_ms=0)
    batcher.submit(job("a"))
    batcher.submit(job("d", describe=True))
    batcher.submit(job("b"))
    assert names(await batcher.next_batch(lambda: False)) == ["a"]
    assert names(await batcher.next_batch(lambda: False)) == ["d"]
    assert names(await batcher.next_batch(lambda: False)) == ["b"]


async def test_queue_is_bounded() -> None:
    batcher = Batcher(capacity=2, batch_size=1, max_delay_ms=0)
    batcher.submit(job("a"))
    batcher.submit(job("b"))
    with pytest.raises(QueueFull):
        batcher.submit(job("c"))
    assert batcher.remaining_capacity == 0


async def test_abandoned_jobs_are_skipped() -> None:
    batcher = Batcher(capacity=10, batch_size=4, max_delay_ms=0)
    gone = job("gone")
    gone.future.cancel()  # the client disconnected
    batcher.submit(gone)
    batcher.submit(job("a"))
    assert names(await batcher.next_batch(lambda: False)) == ["a"]


async def test_cancelled_gather_requeues_its_jobs_in_order() -> None:
    batcher = Batcher(capacity=10, batch_size=4, max_delay_ms=5000, policy="torchserve")
    batcher.submit(job("a"))
    batcher.submit(job("b"))
    task = asyncio.ensure_future(batcher.next_batch(lambda: True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [j.request.request_id for j in batcher.drain()] == ["a", "b"]
