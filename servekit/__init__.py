"""servekit: a PyTorch model server compatible with TorchServe's APIs and archives.

Importing `servekit` stays light (no torch); `BaseHandler` and `Context` load on first use.
"""

from __future__ import annotations

from typing import Any

from servekit.utils import PredictionException
from servekit.version import __version__

__all__ = ["BaseHandler", "Context", "PredictionException", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "BaseHandler":
        from servekit.handlers.base_handler import BaseHandler

        return BaseHandler
    if name == "Context":
        from servekit.worker.context import Context

        return Context
    raise AttributeError(name)
