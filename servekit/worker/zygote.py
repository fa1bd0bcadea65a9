"""The zygote: a process that imports torch once and forks workers on request.

Starting a worker by `fork()` from here costs a few milliseconds instead of a new interpreter
plus a torch import (~1-2 s). The zygote never runs a torch op itself, so no thread pools
exist at fork time and the children start clean.

Control channel: one Unix socket (inherited fd) speaking `servekit.protocol` frames. A
`ForkWorker` frame arrives with two fds (the worker's stdout and stderr pipes). The zygote
answers `Forked(pid)`, and later `ChildExited(pid, status)` when it reaps that worker.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import sys

from servekit import protocol
from servekit.protocol import ChildExited, Forked, ForkWorker

PR_SET_PDEATHSIG = 1


def _preload() -> None:
    """Import what every worker needs, so children inherit it already initialised."""
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401
    import yaml  # noqa: F401

    import servekit.handlers.base_handler  # noqa: F401
    import servekit.handlers.image_classifier  # noqa: F401
    import servekit.worker.service  # noqa: F401


def _die_with_parent() -> None:
    # If the frontend is killed outright, the zygote must not linger.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _recv_fork(ctrl: socket.socket) -> tuple[ForkWorker, list[int]] | None:
    header, fds = _recv_with_fds(ctrl, protocol.HEADER.size)
    if not header:
        return None
    length = protocol.frame_length(header)
    payload = b""
    while len(payload) < length:
        chunk, more = _recv_with_fds(ctrl, length - len(payload))
        if not chunk:
            return None
        payload += chunk
        fds += more
    msg = protocol.decode_payload(payload)
    if not isinstance(msg, ForkWorker):
        raise protocol.ProtocolError(f"zygote got {type(msg).__name__}")
    return msg, fds


def _recv_with_fds(sock: socket.socket, n: int) -> tuple[bytes, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, n, 4)
    return data, list(fds)


def _child(req: ForkWorker, fds: list[int], ctrl: socket.socket, wake_fds: tuple[int, int]) -> None:
    """In the forked worker: become a clean worker process, never return."""
    code = 1
    try:
        ctrl.close()
        for fd in wake_fds:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.chdir(req.cwd)
        os.environ.clear()
        os.environ.update(req.env)
        sys.path[:0] = [p for p in req.python_path if p not in sys.path]
        os.setpgid(0, 0)  # own process group: a signal to the frontend's group spares workers
        from servekit.worker.main import serve

        code = serve(req.sock_path)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(ctrl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        protocol.write_message(ctrl, ChildExited(pid, os.waitstatus_to_exitcode(status)))


def run(ctrl_fd: int) -> int:
    _die_with_parent()
    _preload()
    ctrl = socket.socket(fileno=ctrl_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    print(f"servekit zygote ready (pid {os.getpid()})", flush=True)
    while True:
        ready, _, _ = select.select([ctrl, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(ctrl)
        if ctrl not in ready:
            continue
        received = _recv_fork(ctrl)
        if received is None:
            return 0  # frontend went away; workers notice their own sockets closing
        req, fds = received
        pid = os.fork()
        if pid == 0:
            _child(req, fds, ctrl, (wake_r, wake_w))
        for fd in fds:
            os.close(fd)
        protocol.write_message(ctrl, Forked(pid))


if __name__ == "__main__":
    sys.exit(run(int(sys.argv[1])))
