"""The management listener: list, register, describe, scale, unregister, set-default, /token."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from servekit.errors import BadRequestError, MethodNotAllowedError, ResourceNotFoundError
from servekit.frontend.app_keys import CONFIG, MANAGER, TOKENS
from servekit.frontend.describe import describe_model
from servekit.frontend.http import json_response, path_segments, status_response
from servekit.frontend.models import Outcome, RegisterRequest
from servekit.frontend.openapi import api_description


async def dispatch(request: web.Request) -> web.StreamResponse:
    seg = path_segments(request)
    if not seg or (len(seg) == 2 and seg[1] == "api-description"):
        return api_description(request, "management")
    if seg == ["", "token"] and request.app[TOKENS] is not None:
        request.app[TOKENS].regenerate(request.query.get("type", ""), request.headers.get("Authorization"))
        return web.Response(body=b"\n", content_type="application/json")
    if seg[1] == "models" and 2 <= len(seg) <= 4:
        return await _models_route(request, seg[2:])
    if seg[1] == "models" and len(seg) == 5 and seg[4] == "set-default":
        if request.method != "PUT":
            raise MethodNotAllowedError()
        return _outcome(request.app[MANAGER].set_default(seg[2], seg[3]))
    raise ResourceNotFoundError()


async def _models_route(request: web.Request, rest: list[str]) -> web.StreamResponse:
    method = request.method
    if not rest:
        if method == "GET":
            return _list_models(request)
        if method == "POST":
            _require_model_api(request)
            return _outcome(await request.app[MANAGER].register(await _register_request(request)))
        raise MethodNotAllowedError()
    name, version = rest[0], (rest[1] if len(rest) > 1 else None)
    if method == "GET":
        return _describe(request, name, version)
    if method == "PUT":
        return await _scale(request, name, version or request.query.get("model_version"))
    if method == "DELETE":
        _require_model_api(request)
        return _outcome(await request.app[MANAGER].unregister(name, version))
    raise MethodNotAllowedError()


def _require_model_api(request: web.Request) -> None:
    if not request.app[CONFIG].enable_model_api:
        raise MethodNotAllowedError()


def _outcome(outcome: Outcome) -> web.Response:
    return status_response(outcome.message, outcome.status)


def _int_param(query: Any, key: str, default: int) -> int:
    try:
        return int(query.get(key, default))
    except (TypeError, ValueError):
        return default


def _list_models(request: web.Request) -> web.Response:
    limit = _int_param(request.query, "limit", 100)
    limit = 100 if limit > 100 or limit < 0 else limit
    token = max(0, _int_param(request.query, "next_page_token", 0))
    models = request.app[MANAGER].registry.defaults()
    page = [{"modelName": m.name, "modelUrl": m.url} for m in models[token: token + limit]]
    body: dict[str, Any] = {"models": page}
    if token + limit <= len(models):
        body = {"nextPageToken": str(token + limit), "models": page}
    return json_response(body)


async def _register_request(request: web.Request) -> RegisterRequest:
    params: Any = request.query
    if request.content_type == "application/json":
        params = _lenient_json(await request.text())
    if "url" not in params:
        raise BadRequestError("Parameter url is required.")
    runtime = params.get("runtime")
    if runtime is not None and runtime not in ("python", "python3", "LSP"):
        raise BadRequestError(f"Invalid RuntimeType value: {runtime}")
    return RegisterRequest(
        url=str(params.get("url")), model_name=params.get("model_name"), handler=params.get("handler"),
        runtime=runtime, batch_size=_optional_int(params, "batch_size"),
        max_batch_delay=_optional_int(params, "max_batch_delay"),
        initial_workers=_optional_int(params, "initial_workers"),
        synchronous=str(params.get("synchronous", "true")).lower() == "true",
        response_timeout=_optional_int(params, "response_timeout"),
        startup_timeout=_optional_int(params, "startup_timeout"),
    )


def _lenient_json(text: str) -> dict[str, Any]:
    # TorchServe's own tests send single-quoted keys and numbers as strings; accept both.
    for candidate in (text, text.replace("'", '"')):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise BadRequestError("Invalid JSON body for model registration.")


def _optional_int(params: Any, key: str) -> int | None:
    value = params.get(key)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None  # TorchServe silently falls back to the default


def _describe(request: web.Request, name: str, version: str | None) -> web.Response:
    registry = request.app[MANAGER].registry
    models = registry.versions(name) if version == "all" else [registry.get(name, version)]
    now = time.time()
    return json_response([describe_model(m, now) for m in models])


async def _scale(request: web.Request, name: str, version: str | None) -> web.Response:
    min_w = _int_param(request.query, "min_worker", 1)
    max_w = _int_param(request.query, "max_worker", min_w)
    synchronous = request.query.get("synchronous", "false").lower() == "true"
    return _outcome(await request.app[MANAGER].scale(name, version, min_w, max_w, synchronous))


def management_app(middlewares: list) -> web.Application:  # type: ignore[type-arg]
    app = web.Application(middlewares=middlewares)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
