"""VisionHandler: base for image handlers; decodes images and stacks them (handlers.md §7.1)."""

from __future__ import annotations

import base64
import importlib
import io
from typing import Any, Callable

import torch
from PIL import Image

from servekit.handlers.base_handler import BaseHandler, timed
from servekit.worker.context import Context


class VisionHandler(BaseHandler):
    """Subclasses set `image_processing`, a callable PIL image → tensor (e.g. a Compose)."""

    image_processing: Callable[[Image.Image], torch.Tensor]

    def __init__(self) -> None:
        super().__init__()
        self.ig: Any = None  # captum IntegratedGradients, created on the first explanation

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        if not context.system_properties["limit_max_image_pixels"]:
            # Process-wide: lifts Pillow's decompression-bomb guard for this worker.
            Image.MAX_IMAGE_PIXELS = None

    @timed
    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        images = [self._to_tensor(row.get("data") or row.get("body")) for row in data]
        return torch.stack(images).to(self.device)

    def _to_tensor(self, image: Any) -> torch.Tensor:
        if isinstance(image, str):
            # Text and JSON-string bodies carry base64; non-alphabet characters are skipped.
            image = base64.b64decode(image)
        if isinstance(image, (bytes, bytearray)):
            return self.image_processing(Image.open(io.BytesIO(image)))
        # Already a nested C×H×W list (a JSON body): used as is, without transforms.
        return torch.FloatTensor(image)

    def get_insights(self, tensor_data: Any, raw_data: Any, target: Any = 0) -> Any:
        if self.ig is None:
            # captum is optional and imported on first use; if missing, only this batch fails.
            captum_attr = importlib.import_module("captum.attr")
            self.ig = captum_attr.IntegratedGradients(self.model)
        return self.ig.attribute(tensor_data, target=target, n_steps=15).tolist()
