"""A handler written for TorchServe: it imports TorchServe's module names."""

from ts.context import Context  # noqa: F401
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException


class LegacyHandler(BaseHandler):
    def initialize(self, context):
        self.context = context
        self.initialized = True

    def handle(self, data, context):
        text = (data[0].get("body") or b"").decode() if isinstance(data[0].get("body"), bytes) else data[0].get("body")
        if text == "legal":
            raise PredictionException("Unavailable for legal reasons", 451)
        return [{"handler": type(self).__name__, "model": context.model_name} for _ in data]
