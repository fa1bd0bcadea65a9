"""Starting worker processes: forked from a torch-preloaded zygote, or spawned fresh.

Both launchers hand back a `WorkerProcess` whose stdout/stderr are pipes the frontend reads
into the model log, and whose exit status arrives as a future. Nothing here imports torch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Protocol

from servekit import protocol
from servekit.protocol import ChildExited, Forked, ForkWorker
from servekit.frontend.worker_io import background

log = logging.getLogger("servekit.launcher")


# What a worker process needs to start: socket path, cwd, environment, extra sys.path entries.
WorkerSpec = ForkWorker


@dataclass
class WorkerProcess:
    pid: int
    stdout_fd: int
    stderr_fd: int
    exit_code: asyncio.Future[int] = field(repr=False)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Launcher(Protocol):
    async def launch(self, spec: WorkerSpec) -> WorkerProcess: ...

    async def close(self) -> None: ...


def _pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return (out_r, out_w), (err_r, err_w)


class SpawnLauncher:
    """A new interpreter per worker: slow (imports torch each time) but needs no zygote."""

    async def launch(self, spec: WorkerSpec) -> WorkerProcess:
        (out_r, out_w), (err_r, err_w) = _pipes()
        env = dict(spec.env)
        env["PYTHONPATH"] = os.pathsep.join(spec.python_path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "servekit.worker", "--sock-name", spec.sock_path,
                cwd=spec.cwd, env=env, stdout=out_w, stderr=err_w, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        exit_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        background(_forward_exit(proc, exit_code))
        return WorkerProcess(proc.pid, out_r, err_r, exit_code)

    async def close(self) -> None:
        return None


async def _forward_exit(proc: asyncio.subprocess.Process, fut: asyncio.Future[int]) -> None:
    code = await proc.wait()
    if not fut.done():
        fut.set_result(code)


class ForkLauncher:
    """Forks workers from one zygote process that has already imported torch."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._ctrl: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._forked: asyncio.Future[int] | None = None
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "servekit.worker.zygote", str(theirs.fileno()),
            pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
        )
        theirs.close()
        ours.setblocking(False)
        self._ctrl = ours
        self._reader = asyncio.ensure_future(self._read_events(ours))

    async def launch(self, spec: WorkerSpec) -> WorkerProcess:
        async with self._lock:
            if self._ctrl is None:
                await self.start()
            assert self._ctrl is not None
            (out_r, out_w), (err_r, err_w) = _pipes()
            self._forked = asyncio.get_running_loop().create_future()
            request = ForkWorker(spec.sock_path, spec.cwd, spec.env, spec.python_path)
            try:
                socket.send_fds(self._ctrl, [protocol.encode(request)], [out_w, err_w])
            finally:
                os.close(out_w)
                os.close(err_w)
            pid = await self._forked
            return WorkerProcess(pid, out_r, err_r, self._exits[pid])

    async def _read_events(self, ctrl: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                header = await _sock_read_exact(loop, ctrl, protocol.HEADER.size)
                payload = await _sock_read_exact(loop, ctrl, protocol.frame_length(header))
                self._dispatch(protocol.decode_payload(payload))
        except (ConnectionError, OSError, protocol.ProtocolError, asyncio.IncompleteReadError) as exc:
            log.error("Worker zygote exited (%s); it will be restarted for the next worker", exc)
        finally:
            self._reset(ctrl)

    def _dispatch(self, msg: protocol.Message) -> None:
        if isinstance(msg, Forked):
            self._exits[msg.pid] = asyncio.get_running_loop().create_future()
            if self._forked is not None and not self._forked.done():
                self._forked.set_result(msg.pid)
        elif isinstance(msg, ChildExited):
            fut = self._exits.pop(msg.pid, None)
            if fut is not None and not fut.done():
                fut.set_result(msg.status)

    def _reset(self, ctrl: socket.socket) -> None:
        ctrl.close()
        if self._ctrl is ctrl:
            self._ctrl = None
        if self._forked is not None and not self._forked.done():
            self._forked.set_exception(RuntimeError("worker zygote exited"))
        for fut in self._exits.values():
            if not fut.done():
                fut.set_result(-1)  # orphaned workers still fail by closing their sockets
        self._exits.clear()

    async def close(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        if self._reader is not None:
            self._reader.cancel()
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except asyncio.TimeoutError:
                self._proc.kill()


async def _sock_read_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionError("zygote closed its control socket")
        buf += chunk
    return buf


async def create_launcher(method: str) -> Launcher:
    if method == "spawn":
        return SpawnLauncher()
    launcher = ForkLauncher()
    await launcher.start()
    return launcher
