"""A tiny synchronous HTTP client for tests (stdlib only, one connection per call)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 120) -> Reply:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def assert_error(reply: Reply, status: int, type_name: str, message: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json()
    assert set(body) == {"code", "type", "message"}, body
    assert body["code"] == status and body["type"] == type_name, body
    if message is not None:
        assert body["message"] == message, body
