"""The inference listener: /ping, /predictions, /explanations, KServe-style predict routes.

Handlers here only parse the HTTP request into a `WorkerRequest`, admit it to the model's
batcher and turn the worker's `Prediction` back into a response.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl

from aiohttp import web

from servekit.errors import BadRequestError, ResourceNotFoundError, ServiceUnavailableError
from servekit.frontend.app_keys import MANAGER, METRICS
from servekit.frontend.batcher import Job, QueueFull
from servekit.frontend.http import path_segments, request_id, status_response
from servekit.frontend.openapi import api_description
from servekit.protocol import InputParam, Prediction, WorkerRequest

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def dispatch(request: web.Request) -> web.StreamResponse:
    seg = path_segments(request)
    if not seg or (len(seg) == 2 and seg[1] == "api-description"):
        return api_description(request, "inference")
    if seg[1] == "ping":
        healthy = request.app[MANAGER].healthy()
        return status_response("Healthy" if healthy else "Unhealthy", 200 if healthy else 500)
    if seg[1] in ("predictions", "explanations") and len(seg) >= 3:
        version = seg[3] if len(seg) > 3 else None
        headers = {"url_path": "/".join(seg[4:]), "explain": str(seg[1] == "explanations")}
        return await predict(request, seg[2], version, headers)
    if len(seg) == 4 and seg[1] == "v1" and seg[2] == "models" and ":" in seg[3]:
        name, _, verb = seg[3].partition(":")
        if verb in ("predict", "explain"):
            return await predict(request, name, None, {"explain": str(verb == "explain")})
    if len(seg) == 5 and seg[1] == "v2" and seg[2] == "models" and seg[4] in ("infer", "explain"):
        return await predict(request, seg[3], None, {"explain": str(seg[4] == "explain")})
    raise ResourceNotFoundError()


async def predict(request: web.Request, name: str, version: str | None, extra: dict[str, str]) -> web.StreamResponse:
    arrived = time.monotonic()
    model = request.app[MANAGER].registry.get(name, version)
    metrics = request.app[METRICS]
    labels = metrics.labels(name, version)
    metrics.request_admitted(labels)
    if model.pool is None or not model.pool.workers:
        raise ServiceUnavailableError(_no_worker_message(name, version))
    worker_request = WorkerRequest(request_id(request), _headers(request, extra), await _params(request))
    job = Job(worker_request, asyncio.get_running_loop().create_future())
    try:
        model.pool.batcher.submit(job)
    except QueueFull:
        raise ServiceUnavailableError(_no_worker_message(name, version)) from None
    prediction = await job.future
    metrics.request_done(labels, time.monotonic() - arrived, job.batched_at - job.enqueued_at)
    return _response(prediction)


def _no_worker_message(name: str, version: str | None) -> str:
    prefix = f'Model "{name}" Version {version}"' if version else f'Model "{name}"'
    return (f"{prefix} has no worker to serve inference request. Please use scale workers API to add workers. "
            "If this is a sequence inference, please check if it is closed, or expired; "
            "or exceeds maxSequenceJobQueueSize")


def _headers(request: web.Request, extra: dict[str, str]) -> dict[str, str]:
    # Handlers see header names exactly as the client sent them; the last duplicate wins.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.raw_headers}
    headers.update(extra)
    return headers


async def _params(request: web.Request) -> list[InputParam]:
    mime = request.content_type
    if mime == "multipart/form-data":
        return await _multipart_params(request)
    if mime == "application/x-www-form-urlencoded":
        return _urlencoded_params(await request.read())
    content_type = mime if request.headers.get("Content-Type") else None
    return [InputParam("body", content_type, await request.read())]


def _urlencoded_params(body: bytes) -> list[InputParam]:
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequestError("Invalid form body: not UTF-8 url-encoded data. "
                              "Send binary data with Content-Type: application/octet-stream.") from None
    return [InputParam(k, None, v.encode()) for k, v in fields]


async def _multipart_params(request: web.Request) -> list[InputParam]:
    params = []
    reader = await request.multipart()
    async for part in reader:
        if part.name is None:
            continue
        is_file = getattr(part, "filename", None) is not None
        content_type = part.headers.get("Content-Type", "").split(";")[0].strip() if is_file else None
        params.append(InputParam(part.name, content_type or None, bytes(await part.read())))
    return params


def _response(prediction: Prediction) -> web.Response:
    response = web.Response(body=prediction.body, status=prediction.status, reason=prediction.reason or None,
                            headers=prediction.headers)
    if prediction.content_type:
        response.headers["Content-Type"] = prediction.content_type
    return response


def inference_app(middlewares: list, max_request_size: int) -> web.Application:  # type: ignore[type-arg]
    app = web.Application(middlewares=middlewares, client_max_size=max_request_size)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app

