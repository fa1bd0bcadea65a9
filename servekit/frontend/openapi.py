"""The API description served on `OPTIONS /` and `/api-description` (OpenAPI 3.0.1).

This covers every route servekit serves with its operationId; parameter and response detail
beyond that is the API-description issue's work.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from servekit.errors import MethodNotAllowedError
from servekit.frontend.http import json_response
from servekit.version import TORCHSERVE_COMPAT_VERSION

ROUTES: dict[str, dict[str, dict[str, str]]] = {
    "inference": {
        "/": {"options": "apiDescription"},
        "/ping": {"get": "ping"},
        "/v1/models/{model_name}:predict": {"post": "predictions"},
        "/v2/models/{model_name}/infer": {"post": "predictions"},
        "/predictions/{model_name}": {"post": "predictions"},
        "/predictions/{model_name}/{model_version}": {"post": "version_predictions"},
        "/explanations/{model_name}": {"post": "explanations"},
        "/api-description": {"get": "apiDescription"},
    },
    "management": {
        "/": {"options": "apiDescription"},
        "/models": {"get": "listModels", "post": "registerModel"},
        "/models/{model_name}": {"get": "describeModel", "put": "setAutoScale", "delete": "unregisterModel"},
        "/models/{model_name}/{model_version}": {
            "get": "version_describeModel", "put": "version_setAutoScale", "delete": "version_unregisterModel",
        },
        "/models/{model_name}/{model_version}/set-default": {"put": "setDefault"},
        "/api-description": {"get": "apiDescription"},
    },
    "metrics": {"/metrics": {"get": "metrics"}},
}


def document(listener: str) -> dict[str, Any]:
    paths = {
        path: {method: {"operationId": op, "responses": {"200": {"description": "OK"}}} for method, op in ops.items()}
        for path, ops in ROUTES[listener].items()
    }
    info = {
        "title": "TorchServe APIs",
        "description": "TorchServe is a flexible and easy to use tool for serving deep learning models",
        "version": TORCHSERVE_COMPAT_VERSION,
    }
    return {"openapi": "3.0.1", "info": info, "paths": paths}


def api_description(request: web.Request, listener: str) -> web.Response:
    if request.path == "/" and request.method != "OPTIONS":
        raise MethodNotAllowedError()
    return json_response(document(listener))
