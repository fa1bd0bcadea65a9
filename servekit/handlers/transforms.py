"""Image transforms with torchvision 0.19 semantics for PIL input, built on Pillow + numpy + torch.

The default handlers' outputs depend on matching torchvision exactly (handlers.md §7.2): PIL
bilinear resizing with truncated sizes, banker's rounding in the center crop, and ToTensor's
per-mode dtypes. torch's `interpolate` gives different pixels, so it is never used here.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

# Modes whose pixels are not uint8 keep their own dtype and are not scaled to [0, 1].
_MODE_DTYPES = {
    "I": np.int32,
    "I;16" if sys.byteorder == "little" else "I;16B": np.int16,
    "F": np.float32,
}


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """`size` as (height, width): an int means a square."""
    if isinstance(size, int):
        return size, size
    if len(size) == 1:
        return size[0], size[0]
    return size[0], size[1]


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(new_w, new_h) with the shorter side scaled to `size`; the longer side truncates."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


class Resize:
    """Resize a PIL image: an int scales the shorter side (aspect kept), (h, w) is exact."""

    def __init__(
        self, size: int | Sequence[int], interpolation: Image.Resampling = Image.Resampling.BILINEAR
    ):
        self.size = size
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        width, height = img.size
        if isinstance(self.size, int) or len(self.size) == 1:
            short = self.size if isinstance(self.size, int) else self.size[0]
            new_size = resized_size(width, height, short)
        else:
            new_size = (self.size[1], self.size[0])
        if new_size == (width, height):
            return img  # torchvision returns the input untouched, without resampling
        return img.resize(new_size, resample=self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class CenterCrop:
    """Crop the center; zero-pad first on any axis smaller than the crop."""

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size)

    def __call__(self, img: Image.Image) -> Image.Image:
        crop_h, crop_w = self.size
        width, height = img.size
        if crop_w > width or crop_h > height:
            img = _pad_to(img, crop_w, crop_h)
            width, height = img.size
            if (width, height) == (crop_w, crop_h):
                return img
        # round() is banker's rounding: a half-pixel offset goes to the even side, as in torchvision.
        top = int(round((height - crop_h) / 2.0))
        left = int(round((width - crop_w) / 2.0))
        return img.crop((left, top, left + crop_w, top + crop_h))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def _pad_to(img: Image.Image, min_w: int, min_h: int) -> Image.Image:
    width, height = img.size
    dw, dh = max(min_w - width, 0), max(min_h - height, 0)
    border = (dw // 2, dh // 2, (dw + 1) // 2, (dh + 1) // 2)  # left, top, right, bottom
    return ImageOps.expand(img, border=border, fill=0)


def pil_to_tensor_float(img: Image.Image) -> torch.Tensor:
    """ToTensor for a PIL image: C×H×W, uint8 data scaled to [0, 1], other dtypes unscaled."""
    arr = np.array(img, dtype=_MODE_DTYPES.get(img.mode, np.uint8), copy=True)
    if img.mode == "1":
        arr = arr * np.uint8(255)
    tensor = torch.from_numpy(arr).view(img.size[1], img.size[0], len(img.getbands()))
    tensor = tensor.permute(2, 0, 1).contiguous()
    if tensor.dtype == torch.uint8:
        return tensor.to(dtype=torch.get_default_dtype()).div(255)
    return tensor


class ToTensor:
    """PIL image → C×H×W tensor (mode `P` yields palette indices, not colours)."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return pil_to_tensor_float(img)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """Per-channel `(x - mean) / std`; the channel count must match `mean` (no broadcasting)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got {tuple(tensor.shape)}.")
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        if (std == 0).any():
            raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by zero.")
        # In-place on a copy, like torchvision: a 1- or 4-channel image must fail here
        # instead of silently broadcasting to 3 channels.
        return tensor.clone().sub_(mean).div_(std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for transform in self.transforms:
            img = transform(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"
