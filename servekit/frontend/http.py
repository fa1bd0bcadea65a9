"""What every HTTP response shares: TorchServe's headers, JSON formatting, the error body,
the access log, and the one place where typed errors become HTTP statuses."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from servekit.errors import ServekitError

access_log = logging.getLogger("ACCESS_LOG")
log = logging.getLogger("servekit.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMMON_HEADERS = {
    "Pragma": "no-cache",
    "Cache-Control": "no-cache; no-store, must-revalidate, private",
    "Expires": "Thu, 01 Jan 1970 00:00:00 UTC",
}
REQUEST_ID = "servekit_request_id"


def json_body(obj: Any) -> bytes:
    return (json.dumps(_drop_nulls(obj), indent=2, ensure_ascii=False) + "\n").encode()


def _drop_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_nulls(v) for v in obj]
    return obj


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json_body(obj), status=status, content_type="application/json")


def status_response(message: str, status: int = 200) -> web.Response:
    return json_response({"status": message}, status)


def error_response(error: ServekitError) -> web.Response:
    return json_response(error.to_body(), error.status)


def path_segments(request: web.Request) -> list[str]:
    """Split like TorchServe's router: leading empty segment kept, trailing empties dropped."""
    path = unquote(request.rel_url.raw_path)
    if path == "/":
        return []
    segments = path.split("/")
    while segments and segments[-1] == "":
        segments.pop()
    return segments


def request_id(request: web.Request) -> str:
    return str(request[REQUEST_ID])


@web.middleware
async def common_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    request[REQUEST_ID] = str(uuid.uuid4())
    try:
        response = await handler(request)
    except ServekitError as error:
        response = error_response(error)
    except web.HTTPRequestEntityTooLarge:
        raise
    except web.HTTPException as exc:
        response = _from_aiohttp(exc)
    except Exception:  # noqa: BLE001 - a bug must still produce a JSON 500, and be logged
        log.exception("Unhandled error for %s %s", request.method, request.path_qs)
        response = error_response(ServekitError("Internal server error"))
    _finish(request, response, started)
    return response


def _from_aiohttp(exc: web.HTTPException) -> web.Response:
    return error_response(ServekitError(exc.reason or "Invalid HTTP message.", exc.status, "BadRequestException"))


def _finish(request: web.Request, response: web.StreamResponse, started: float) -> None:
    response.headers["x-request-id"] = request[REQUEST_ID]
    for key, value in COMMON_HEADERS.items():
        response.headers.setdefault(key, value)
    if response.status >= 400:
        response.force_close()  # TorchServe closes the connection after every error
    peer = request.transport.get_extra_info("peername") if request.transport else None
    remote = f"/{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "/unix"
    elapsed_ms = int((time.monotonic() - started) * 1000)
    access_log.info('%s "%s %s HTTP/%d.%d" %d %d', remote, request.method, request.path_qs,
                    request.version.major, request.version.minor, response.status, elapsed_ms)
