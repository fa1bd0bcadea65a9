"""Async I/O with one worker process: framed messages on its socket, its output into the model log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, Coroutine

from servekit import protocol

model_log = logging.getLogger("MODEL_LOG")
model_metrics = logging.getLogger("MODEL_METRICS")


_background: set[asyncio.Task[Any]] = set()


def background(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run a fire-and-forget task, keeping a reference: the loop holds tasks only weakly."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class WorkerConnection:
    """Framed messages to and from one worker. A reader task watches the socket all the time,
    so a worker that dies while idle is noticed at once, not when the next batch is sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame_limit: int):
        self._reader = reader
        self._writer = writer
        self._frame_limit = frame_limit
        self._inbox: asyncio.Queue[protocol.Message | BaseException] = asyncio.Queue()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pump = background(self._read_forever())

    @classmethod
    async def open(cls, sock: socket.socket, max_response_size: int) -> "WorkerConnection":
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        # A reply frame holds a whole batch; bodies themselves are checked against the limit later.
        return cls(reader, writer, frame_limit=max(64 * max_response_size, 1 << 26))

    def send(self, msg: protocol.Message) -> None:
        # Batches are small next to the socket buffer and the worker reads them eagerly, so
        # write() without awaiting drain() is safe and saves a scheduling round per batch.
        self._writer.write(protocol.encode(msg))

    async def read(self) -> protocol.Message:
        item = await self._inbox.get()
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)  # every later read fails the same way
            raise item
        return item

    async def _read_forever(self) -> None:
        try:
            while True:
                header = await self._reader.readexactly(protocol.HEADER.size)
                payload = await self._reader.readexactly(protocol.frame_length(header, self._frame_limit))
                self._inbox.put_nowait(protocol.decode_payload(payload))
        except asyncio.CancelledError:
            self._inbox.put_nowait(ConnectionError("connection closed by the frontend"))
            raise
        except (OSError, asyncio.IncompleteReadError, protocol.ProtocolError) as exc:
            self._inbox.put_nowait(exc if isinstance(exc, protocol.ProtocolError) else ConnectionError(str(exc)))
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    def close(self) -> None:
        self._pump.cancel()
        self._writer.close()


async def pump_output(fd: int, thread_name: str, level: int) -> None:
    """Copy a worker's stdout/stderr into the model log, line by line, until the pipe closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe = os.fdopen(fd, "rb", 0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    extra = {"worker_thread": thread_name}
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line longer than the limit: skip the rest of it
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text.startswith("[METRICS]"):
                model_metrics.info("%s", text[len("[METRICS]"):], extra=extra)
            else:
                model_log.log(level, "%s", text, extra=extra)
    finally:
        transport.close()
