"""The describe-model JSON shape (http-api.md §5.5)."""

from __future__ import annotations

import time
from typing import Any

from servekit.frontend.registry import ModelVersion
from servekit.frontend.worker import Worker, WorkerState


def _timestamp(epoch: float) -> str:
    # TorchServe renders local time with a literal Z suffix; we do the same.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def describe_worker(worker: Worker) -> dict[str, Any]:
    return {
        "id": str(worker.port),
        "startTime": _timestamp(worker.start_time),
        "status": "READY" if worker.state is WorkerState.READY else "UNLOADING",
        "memoryUsage": _rss_bytes(worker.pid),
        "pid": worker.pid,
        "gpu": False,
        "gpuUsage": "N/A",
    }


def _rss_bytes(pid: int) -> int:
    if pid <= 0:
        return 0
    try:
        with open(f"/proc/{pid}/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def describe_model(model: ModelVersion, now: float) -> dict[str, Any]:
    pool = model.pool
    workers = pool.workers if pool is not None else []
    batcher = pool.batcher if pool is not None else None
    return {
        "modelName": model.name,
        "modelVersion": model.version,
        "modelUrl": model.url,
        "runtime": model.runtime,
        "minWorkers": model.min_workers,
        "maxWorkers": model.max_workers,
        "batchSize": model.batch_size,
        "maxBatchDelay": model.max_batch_delay,
        "responseTimeout": model.response_timeout,
        "startupTimeout": model.startup_timeout,
        "maxRetryTimeoutInSec": model.max_retry_timeout,
        "clientTimeoutInMills": 0,
        "parallelType": "",
        "parallelLevel": 0,
        "deviceType": model.device_type,
        "continuousBatching": False,
        "useJobTicket": False,
        "useVenv": False,
        "stateful": False,
        "sequenceMaxIdleMSec": 0,
        "sequenceTimeoutMSec": 0,
        "maxNumSequence": 0,
        "maxSequenceJobQueueSize": 0,
        "loadedAtStartup": model.loaded_at_startup,
        "workers": [describe_worker(w) for w in workers],
        "jobQueueStatus": {
            "remainingCapacity": batcher.remaining_capacity if batcher else model.job_queue_size,
            "pendingRequests": batcher.pending if batcher else 0,
        },
    }
