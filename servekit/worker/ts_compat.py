"""TorchServe's module names (`ts.*`) for handlers written against TorchServe, in the worker only.

Handlers do `from ts.torch_handler.base_handler import BaseHandler` or
`from ts.utils.util import PredictionException`. Installing a top-level `ts` package would clash
with a real TorchServe in the same environment, so instead the worker adds an import hook that
serves those names from servekit's modules -- and only when no real `ts` is importable.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Sequence

ALIASES = {
    "ts.context": "servekit.worker.context",
    "ts.utils.util": "servekit.utils",
    "ts.torch_handler.base_handler": "servekit.handlers.base_handler",
    "ts.torch_handler.vision_handler": "servekit.handlers.vision_handler",
    "ts.torch_handler.image_classifier": "servekit.handlers.image_classifier",
}
PACKAGES = {"ts", "ts.utils", "ts.torch_handler"}


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in PACKAGES:
            package = types.ModuleType(spec.name)
            package.__path__ = []  # a namespace-like package: children come from this finder
            return package
        return importlib.import_module(ALIASES[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class TorchServeAliases(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname in PACKAGES or fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(), is_package=fullname in PACKAGES)
        return None


def install() -> bool:
    """Add the `ts.*` aliases unless a real TorchServe is installed; True when installed."""
    if any(isinstance(f, TorchServeAliases) for f in sys.meta_path):
        return True
    if importlib.util.find_spec("ts") is not None:
        return False
    sys.meta_path.append(TorchServeAliases())
    return True
