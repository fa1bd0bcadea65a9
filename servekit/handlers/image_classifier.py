"""ImageClassifier (`image_classifier`): ImageNet-style classification, top-5 labels (§7.3)."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from PIL import Image

from servekit.handlers.base_handler import timed
from servekit.handlers.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor
from servekit.handlers.vision_handler import VisionHandler
from servekit.utils import map_class_to_label

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_rgb(img: Image.Image) -> Image.Image:
    # servekit deviation from TorchServe (project decision): grayscale/palette/RGBA inputs
    # classify instead of failing Normalize's 3-channel check with a 503.
    return img if img.mode == "RGB" else img.convert("RGB")


class ImageClassifier(VisionHandler):
    """Returns, per image, a dict of the `topk` most likely labels → probabilities."""

    topk = 5
    image_processing = Compose(
        [to_rgb, Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )

    def set_max_result_classes(self, topk: int) -> None:
        self.topk = topk

    def get_max_result_classes(self) -> int:
        return self.topk

    @timed
    def postprocess(self, data: torch.Tensor) -> list[dict[str, float]]:
        probs, classes = torch.topk(F.softmax(data, dim=1), self.topk, dim=1)
        return map_class_to_label(probs.tolist(), self.mapping, classes.tolist())
