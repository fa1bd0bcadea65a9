"""Framing and message round trips of the frontend <-> worker protocol."""

from __future__ import annotations

import socket

import msgpack
import pytest

from servekit import protocol
from servekit.protocol import (Batch, BatchResult, ChildExited, Forked, ForkWorker, Hello, InputParam, LoadModel,
                               LoadResult, Prediction, ProtocolError, WorkerRequest)

MESSAGES = [
    Hello(pid=42),
    LoadModel("m", "/models/x", "image_classifier", batch_size=4, gpu=None, envelope=None, torch_threads=2),
    LoadResult(500, "Failed to load model m", detail="Traceback ..."),
    Batch([WorkerRequest("id-1", {"Content-Type": "image/jpeg", "url_path": ""},
                         [InputParam("body", "image/jpeg", b"\xff\xd8binary"), InputParam("x", None, b"")])]),
    BatchResult(200, "Prediction success", [Prediction("id-1", b"{}", 201, "Created", "application/json", {"a": "b"})]),
    BatchResult(503, "Prediction failed", [], stream=False),
    ForkWorker("/tmp/s", "/tmp/m", {"A": "1"}, ["/tmp/m"]),
    Forked(7),
    ChildExited(7, -9),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: protocol.Message) -> None:
    frame = protocol.encode(message)
    assert protocol.frame_length(frame[:4]) == len(frame) - 4
    assert protocol.decode_payload(frame[4:]) == message


def test_bodies_travel_as_msgpack_bin_not_pickle() -> None:
    frame = protocol.encode(Batch([WorkerRequest("i", {}, [InputParam("body", None, b"\x00\x01")])]))
    raw = msgpack.unpackb(frame[4:], raw=False)
    assert raw["requests"][0][2][0][2] == b"\x00\x01"


def test_blocking_socket_helpers_read_frames_in_order() -> None:
    a, b = socket.socketpair()
    with a, b:
        for message in MESSAGES[:3]:
            protocol.write_message(a, message)
        assert [protocol.read_message(b) for _ in range(3)] == MESSAGES[:3]
        a.shutdown(socket.SHUT_WR)
        assert protocol.read_message(b) is None  # clean EOF between frames


def test_truncated_frame_is_an_error() -> None:
    a, b = socket.socketpair()
    with a, b:
        frame = protocol.encode(Hello(pid=1))
        a.sendall(frame[:-2])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ProtocolError, match="mid-frame"):
            protocol.read_message(b)


@pytest.mark.parametrize("payload", [b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"t": "nope"}),
                                     msgpack.packb({"t": "hello"})])
def test_malformed_payloads_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_payload(payload)


def test_frame_limit() -> None:
    with pytest.raises(ProtocolError, match="exceed limit"):
        protocol.frame_length(protocol.HEADER.pack(1000), limit=999)
