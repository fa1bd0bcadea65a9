"""The frontend <-> worker wire contract, imported by both sides.

Frames are a 4-byte big-endian length followed by one msgpack map. Every map has a `t` (type)
key. Bodies travel as msgpack `bin`, never pickled. The worker speaks first with `Hello`, which
carries the protocol version, so a mismatched worker is refused instead of misread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Union

import msgpack

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 31


class ProtocolError(Exception):
    """A frame that cannot be decoded; the connection is unusable afterwards."""


@dataclass(frozen=True)
class Hello:
    """Worker -> frontend, first frame after connecting."""

    pid: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class LoadModel:
    """Frontend -> worker: load the model once (workers-batching.md §3.1)."""

    model_name: str
    model_path: str
    handler: str
    batch_size: int = 1
    gpu: int | None = None
    envelope: str | None = None
    limit_max_image_pixels: bool = True
    torch_threads: int = 0  # 0 = leave torch's default


@dataclass(frozen=True)
class LoadResult:
    """Worker -> frontend: outcome of LoadModel. `detail` carries the handler's own traceback."""

    code: int
    message: str
    detail: str = ""


@dataclass(frozen=True)
class InputParam:
    name: str
    content_type: str | None
    value: bytes


@dataclass(frozen=True)
class WorkerRequest:
    request_id: str
    headers: dict[str, str]
    params: list[InputParam]


@dataclass(frozen=True)
class Batch:
    """Frontend -> worker: one batch of requests (predict, explain or describe by headers)."""

    requests: list[WorkerRequest]


@dataclass(frozen=True)
class Prediction:
    request_id: str
    body: bytes
    status: int = 200
    reason: str = ""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    """Worker -> frontend: a reply for the whole batch.

    `code != 200` fails every request of the batch with `message`. `stream` is True for an
    intermediate (streamed) reply; the batch is finished by the first reply with stream False.
    """

    code: int
    message: str
    predictions: list[Prediction] = field(default_factory=list)
    stream: bool = False


@dataclass(frozen=True)
class ForkWorker:
    """Frontend -> zygote: fork a worker. Its stdout/stderr pipe ends travel as SCM_RIGHTS fds."""

    sock_path: str
    cwd: str
    env: dict[str, str]
    python_path: list[str]


@dataclass(frozen=True)
class Forked:
    """Zygote -> frontend: the pid of the worker forked for the last ForkWorker."""

    pid: int


@dataclass(frozen=True)
class ChildExited:
    """Zygote -> frontend: a forked worker exited (`status` as from os.waitstatus_to_exitcode)."""

    pid: int
    status: int


Message = Union[Hello, LoadModel, LoadResult, Batch, BatchResult, ForkWorker, Forked, ChildExited]
_SIMPLE: dict[str, type] = {
    "hello": Hello, "load": LoadModel, "loaded": LoadResult,
    "fork": ForkWorker, "forked": Forked, "exited": ChildExited,
}
_TAGS = {cls: tag for tag, cls in _SIMPLE.items()}


def _pack_request(r: WorkerRequest) -> list[Any]:
    return [r.request_id, r.headers, [[p.name, p.content_type, p.value] for p in r.params]]


def _unpack_request(raw: list[Any]) -> WorkerRequest:
    rid, headers, params = raw
    return WorkerRequest(rid, headers, [InputParam(n, c, v) for n, c, v in params])


def _pack_prediction(p: Prediction) -> list[Any]:
    return [p.request_id, p.body, p.status, p.reason, p.content_type, p.headers]


def _unpack_prediction(raw: list[Any]) -> Prediction:
    return Prediction(*raw)


def to_wire(msg: Message) -> dict[str, Any]:
    if isinstance(msg, Batch):
        return {"t": "batch", "requests": [_pack_request(r) for r in msg.requests]}
    if isinstance(msg, BatchResult):
        preds = [_pack_prediction(p) for p in msg.predictions]
        return {"t": "result", "code": msg.code, "message": msg.message, "p": preds, "stream": msg.stream}
    tag = _TAGS.get(type(msg))
    if tag is not None:
        return {"t": tag, **msg.__dict__}
    raise TypeError(f"not a protocol message: {type(msg).__name__}")


def from_wire(raw: dict[str, Any]) -> Message:
    try:
        kind = raw.pop("t")
        if kind == "batch":
            return Batch([_unpack_request(r) for r in raw["requests"]])
        if kind == "result":
            preds = [_unpack_prediction(p) for p in raw["p"]]
            return BatchResult(raw["code"], raw["message"], preds, raw["stream"])
        if kind in _SIMPLE:
            return _SIMPLE[kind](**raw)  # type: ignore[no-any-return]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from exc
    raise ProtocolError(f"unknown message type: {kind!r}")


def encode(msg: Message) -> bytes:
    payload = msgpack.packb(to_wire(msg), use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProtocolError("frame is not a map")
    return from_wire(raw)


def frame_length(header: bytes, limit: int = MAX_FRAME_BYTES) -> int:
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"Message size exceed limit: {length}")
    return length


# Blocking helpers for the worker process (one connection, one batch at a time).

def read_message(sock: Any) -> Message | None:
    """Read one frame from a blocking socket; None on a clean EOF between frames."""
    header = _recv_exact(sock, HEADER.size, eof_ok=True)
    if header is None:
        return None
    payload = _recv_exact(sock, frame_length(header), eof_ok=False)
    assert payload is not None
    return decode_payload(payload)


def write_message(sock: Any, msg: Message) -> None:
    sock.sendall(encode(msg))


def _recv_exact(sock: Any, n: int, eof_ok: bool) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            if eof_ok and got == 0:
                return None
            raise ProtocolError("connection closed mid-frame")
        got += k
    return bytes(buf)
