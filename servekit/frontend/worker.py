"""One worker slot: its process, its connection, and its restart loop (no HTTP here).

A `Worker` owns one process at a time. It takes batches from its model's `Batcher`, sends
them, and routes replies to the waiting requests. When the process dies, hangs past the
response timeout or fails to load, the in-flight requests get an error at once and the same
slot (same id) is restarted after TorchServe's back-off delay.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from servekit import protocol
from servekit.errors import ServekitError
from servekit.frontend.batcher import Batcher, Job
from servekit.frontend.launcher import Launcher, WorkerProcess, WorkerSpec
from servekit.frontend.worker_io import WorkerConnection, background, pump_output
from servekit.protocol import Batch, BatchResult, Hello, LoadModel, LoadResult

log = logging.getLogger("servekit.worker")
BACKOFF_S = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597]
WORKER_DIED = "Worker died."


class WorkerState(enum.Enum):
    STARTING = "WORKER_STARTED"
    READY = "WORKER_MODEL_LOADED"
    ERROR = "WORKER_ERROR"
    STOPPED = "WORKER_STOPPED"
    SCALED_DOWN = "WORKER_SCALED_DOWN"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker slot needs to know about its model; built once per model version."""

    name: str  # e.g. "densenet161_1.0", used in worker names and logs
    load: LoadModel
    model_dir: str
    env: dict[str, str]
    python_path: list[str]
    response_timeout_s: float
    startup_timeout_s: float
    max_retry_timeout_s: float = 300.0
    max_response_size: int = 6553500


class WorkerFailure(Exception):
    def __init__(self, reason: str, status: int = 500):
        super().__init__(reason)
        self.status = status


@dataclass
class Worker:
    port: int
    config: WorkerConfig
    batcher: Batcher
    launcher: Launcher
    sock_dir: Path
    others_busy: Callable[[], bool]
    state: WorkerState = WorkerState.STARTING
    pid: int = -1
    start_time: float = field(default_factory=time.time)
    busy: bool = False
    first_load: asyncio.Future[LoadResult] = field(init=False)
    _stopping: bool = False
    _retries: int = 0
    _recovery_start: float | None = None
    _in_flight: list[Job] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _waiting: asyncio.Future[list[Job]] | None = None
    _process: WorkerProcess | None = None

    def __post_init__(self) -> None:
        self.first_load = asyncio.get_running_loop().create_future()

    @property
    def name(self) -> str:
        return f"W-{self.port}-{self.config.name}"

    @property
    def healthy(self) -> bool:
        start = self._recovery_start
        return start is None or time.monotonic() - start < self.config.max_retry_timeout_s

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self, timeout_s: float) -> bool:
        """Scale this slot down: finish the batch in flight, then end the process. True if it exited."""
        self._stopping = True
        self.state = WorkerState.SCALED_DOWN
        if self._waiting is not None:
            self._waiting.cancel()
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            self._task.cancel()
            if self._process is not None:
                self._process.kill()
            return False
        return True

    async def _run(self) -> None:
        while not self._stopping:
            await self._one_life()
            if self._stopping:
                return
            if not self.healthy:
                log.error("%s: giving up after %.0f s of failures", self.name, self.config.max_retry_timeout_s)
                return
            self._retries = min(self._retries + 1, len(BACKOFF_S) - 1)
            delay = BACKOFF_S[self._retries]
            log.info("%s: restarting in %s seconds", self.name, delay)
            await asyncio.sleep(delay)

    async def _one_life(self) -> None:
        self.state, self.pid = WorkerState.STARTING, -1
        conn: WorkerConnection | None = None
        try:
            conn = await self._start_process()
            await self._load(conn)
            await self._serve(conn)
        except WorkerFailure as failure:
            self._on_failure(failure)
        except (OSError, protocol.ProtocolError, asyncio.IncompleteReadError) as exc:
            self._on_failure(WorkerFailure(f"connection lost: {exc}"))
        finally:
            await self._end_process(conn)

    def _on_failure(self, failure: WorkerFailure) -> None:
        if not self._stopping:
            log.warning("%s failed: %s", self.name, failure)
            self.state = WorkerState.STOPPED
        if self._recovery_start is None:
            self._recovery_start = time.monotonic()
        status = failure.status
        error = ServekitError(WORKER_DIED, 507 if status == 413 else status)
        for job in self._in_flight:
            if not job.abandoned:
                job.future.set_exception(error)
        self._in_flight = []
        if not self.first_load.done():
            self.first_load.set_result(LoadResult(status, str(failure)))

    async def _start_process(self) -> WorkerConnection:
        sock_path = self.sock_dir / f".ts.sock.{self.port}"
        sock_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(sock_path))
            listener.listen(1)
            listener.setblocking(False)
            spec = WorkerSpec(str(sock_path), self.config.model_dir, self.config.env, self.config.python_path)
            self._process = await self.launcher.launch(spec)
            self._pump_logs(self._process)
            return await self._accept(listener, self._process)
        finally:
            listener.close()
            sock_path.unlink(missing_ok=True)

    async def _accept(self, listener: socket.socket, process: WorkerProcess) -> WorkerConnection:
        loop = asyncio.get_running_loop()
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        done, _ = await asyncio.wait(
            {accept, process.exit_code}, timeout=self.config.startup_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if accept not in done:
            accept.cancel()
            raise WorkerFailure("Backend stream closed." if done else "Backend worker startup time out.")
        conn = await WorkerConnection.open(accept.result()[0], self.config.max_response_size)
        hello = await asyncio.wait_for(conn.read(), self.config.startup_timeout_s)
        if not isinstance(hello, Hello) or hello.version != protocol.PROTOCOL_VERSION:
            raise WorkerFailure(f"worker spoke an unexpected protocol: {hello!r}")
        self.pid = hello.pid
        return conn

    def _pump_logs(self, process: WorkerProcess) -> None:
        background(pump_output(process.stdout_fd, f"{self.name}-stdout", logging.INFO))
        background(pump_output(process.stderr_fd, f"{self.name}-stderr", logging.WARNING))

    async def _load(self, conn: WorkerConnection) -> None:
        conn.send(self.config.load)
        try:
            reply = await asyncio.wait_for(conn.read(), self.config.startup_timeout_s)
        except asyncio.TimeoutError:
            raise WorkerFailure("Backend worker did not load the model in time") from None
        if not isinstance(reply, LoadResult):
            raise WorkerFailure(f"unexpected reply to load: {type(reply).__name__}")
        if reply.code != 200:
            self.state = WorkerState.ERROR
            if not self.first_load.done():
                self.first_load.set_result(reply)
            raise WorkerFailure(f"load failed: {reply.message}", reply.code)
        self.state, self._retries, self._recovery_start = WorkerState.READY, 0, None
        if not self.first_load.done():
            self.first_load.set_result(reply)

    async def _serve(self, conn: WorkerConnection) -> None:
        while not self._stopping:
            self._waiting = waiting = asyncio.ensure_future(self.batcher.next_batch(self.others_busy))
            try:
                await asyncio.wait({waiting, conn.closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiting = None
            if not waiting.done():  # the process died while idle
                waiting.cancel()
                raise WorkerFailure("Backend worker died while idle", await self._death_status())
            if waiting.cancelled():
                return  # stop() cancelled the wait
            jobs = waiting.result()
            self.busy, self._in_flight = True, jobs
            try:
                await self._run_batch(conn, jobs)
            finally:
                self.busy = False
            self._in_flight = []  # on failure _on_failure still needs them

    async def _run_batch(self, conn: WorkerConnection, jobs: list[Job]) -> None:
        conn.send(Batch([job.request for job in jobs]))
        try:
            reply = await asyncio.wait_for(conn.read(), self.config.response_timeout_s)
        except asyncio.TimeoutError:
            log.error("%s: Backend worker did not respond in given time", self.name)
            raise WorkerFailure("response timeout") from None
        except ConnectionError:
            raise WorkerFailure("Backend worker connection closed", await self._death_status()) from None
        if not isinstance(reply, BatchResult):
            raise WorkerFailure(f"unexpected reply to a batch: {type(reply).__name__}")
        if any(len(p.body) > self.config.max_response_size for p in reply.predictions):
            # TorchServe drops the connection on an oversized frame; the worker restarts.
            raise WorkerFailure("Message size exceed limit; consider increasing max_response_size")
        _deliver(reply, jobs)

    async def _death_status(self) -> int:
        """413 (shown as 507) when the process was SIGKILLed from outside, typically the OOM killer."""
        if self._process is None:
            return 500
        try:
            code = await asyncio.wait_for(asyncio.shield(self._process.exit_code), 1.0)
        except asyncio.TimeoutError:
            return 500
        return 413 if code in (137, -9) else 500

    async def _end_process(self, conn: WorkerConnection | None) -> None:
        if conn is not None:
            conn.close()
        process, self._process = self._process, None
        if process is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(process.exit_code), 2.0)
        except asyncio.TimeoutError:
            process.kill()


def _deliver(reply: BatchResult, jobs: list[Job]) -> None:
    if reply.code != 200:
        error = ServekitError(reply.message, 507 if reply.code == 413 else reply.code)
        for job in jobs:
            if not job.abandoned:
                job.future.set_exception(error)
        return
    by_id = {p.request_id: p for p in reply.predictions}
    for job in jobs:
        prediction = by_id.get(job.request.request_id)
        if job.abandoned:
            continue
        if prediction is None:
            job.future.set_exception(ServekitError("number of batch response mismatched", 503))
        else:
            job.future.set_result(prediction)
