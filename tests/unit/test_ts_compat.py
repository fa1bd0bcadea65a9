"""`ts.*` module names resolve to servekit's modules inside a worker, without a real `ts` package."""

from __future__ import annotations

import subprocess
import sys


def test_ts_names_alias_servekit_modules() -> None:
    code = """
import importlib.util, sys
assert importlib.util.find_spec("ts") is None, "a real TorchServe is installed"
from servekit.worker.ts_compat import install
assert install()
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.image_classifier import ImageClassifier
from ts.utils.util import PredictionException
from ts.context import Context
import servekit.handlers.base_handler as b, servekit.utils as u, servekit.worker.context as c
assert BaseHandler is b.BaseHandler and PredictionException is u.PredictionException and Context is c.Context
try:
    import ts.not_a_module
except ImportError:
    pass
else:
    raise AssertionError("unknown ts names must not import")
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_frontend_process_has_no_ts_aliases() -> None:
    code = "import importlib.util, servekit.frontend.server; assert importlib.util.find_spec('ts') is None"
    subprocess.run([sys.executable, "-c", code], check=True)
