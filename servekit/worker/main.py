"""The worker process: connect to the frontend, load one model, run batches until told to stop.

It runs either freshly spawned (`python -m servekit.worker --sock-name PATH`) or forked from the
zygote (`servekit.worker.zygote`), which has already imported torch so a new worker starts in
milliseconds instead of paying the interpreter + torch import.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import traceback

from servekit import protocol
from servekit.worker import ts_compat
from servekit.protocol import Batch, BatchResult, Hello, LoadModel, LoadResult

log = logging.getLogger("servekit.worker")


def serve(sock_path: str) -> int:
    """Run one worker's whole life on the frontend socket at `sock_path`; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    ts_compat.install()  # handlers written for TorchServe import `ts.*`
    print(f"[PID]{os.getpid()}", flush=True)
    print("Torch worker started.", flush=True)
    print(f"Python runtime: {platform.python_version()}", flush=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(sock_path)
    except OSError as exc:
        print(f"Backend worker could not connect to {sock_path}: {exc}", file=sys.stderr, flush=True)
        return 1
    protocol.write_message(sock, Hello(pid=os.getpid()))
    try:
        return _loop(sock)
    except Exception:  # noqa: BLE001 - last resort: report and let the frontend restart us
        print("Backend worker process died.", file=sys.stderr, flush=True)
        traceback.print_exc()
        return 1
    finally:
        sock.close()


def _loop(sock: socket.socket) -> int:
    service = None
    while True:
        msg = protocol.read_message(sock)
        if msg is None:
            log.info("Frontend disconnected.")
            return 0
        if isinstance(msg, LoadModel):
            service = _load(sock, msg)
            if service is None:
                return 1
        elif isinstance(msg, Batch):
            if service is None:
                raise RuntimeError("Received a batch, but service is not loaded")
            protocol.write_message(sock, service.predict(msg.requests))
        else:
            raise RuntimeError(f"Received unknown command: {type(msg).__name__}")


def _load(sock: socket.socket, msg: LoadModel):  # type: ignore[no-untyped-def]
    from servekit.worker.service import Service, load_failure

    try:
        service = Service.load(msg)
    except BaseException as exc:  # noqa: BLE001 - every load failure gets a reply
        result = load_failure(exc) if isinstance(exc, Exception) else LoadResult(500, str(exc))
        print(f"Failed to load model {msg.model_name}", file=sys.stderr, flush=True)
        traceback.print_exc()
        protocol.write_message(sock, result)
        return None
    protocol.write_message(sock, LoadResult(200, f"loaded model {msg.model_name}"))
    return service


def send_stream_reply(sock: socket.socket, result: BatchResult) -> None:
    """Used by streaming handlers to push an intermediate reply for the current batch."""
    protocol.write_message(sock, result)
