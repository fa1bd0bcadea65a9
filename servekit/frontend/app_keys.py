"""Typed aiohttp application state, shared by the three listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from servekit.config import Config
    from servekit.frontend.auth import TokenStore
    from servekit.frontend.metrics import FrontendMetrics
    from servekit.frontend.models import ModelManager

MANAGER: web.AppKey["ModelManager"] = web.AppKey("manager")
METRICS: web.AppKey["FrontendMetrics"] = web.AppKey("metrics")
CONFIG: web.AppKey["Config"] = web.AppKey("config")
TOKENS: web.AppKey["TokenStore | None"] = web.AppKey("tokens")
