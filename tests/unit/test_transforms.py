"""Transforms must reproduce torchvision 0.19 on PIL input (handlers.md §7.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from servekit.handlers.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def noise_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width, channels) if channels else (height, width)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)


# (w, h) of the spec's worked inputs, size after Resize(256), crop box after CenterCrop(224)
SPEC_TABLE = [
    ((720, 720), (256, 256), (16, 16, 240, 240)),
    ((224, 168), (341, 256), (58, 16, 282, 240)),  # upscale; round(58.5) == 58
    ((374, 267), (358, 256), (67, 16, 291, 240)),
    ((28, 28), (256, 256), (16, 16, 240, 240)),
]


@pytest.mark.parametrize(("size", "resized", "box"), SPEC_TABLE)
def test_resize_and_crop_match_spec_table(size, resized, box):
    img = noise_image(*size)
    out = Resize(256)(img)
    assert out.size == resized
    assert np.array_equal(np.asarray(out), np.asarray(img.resize(resized, Image.BILINEAR)))
    cropped = CenterCrop(224)(out)
    assert cropped.size == (224, 224)
    assert np.array_equal(np.asarray(cropped), np.asarray(out.crop(box)))


def test_resize_grayscale_keeps_mode():
    out = Resize(256)(noise_image(28, 28, "L"))
    assert (out.mode, out.size) == ("L", (256, 256))


def test_resize_portrait_truncates_long_side():
    assert Resize(256)(noise_image(300, 401)).size == (256, 342)  # 256 * 401 / 300 = 342.18


def test_resize_unchanged_returns_same_image():
    img = noise_image(256, 300)
    assert Resize(256)(img) is img


def test_resize_exact_size_sequence():
    assert Resize((100, 50))(noise_image(30, 40)).size == (50, 100)


def test_center_crop_pads_with_zeros_when_too_small():
    img = Image.fromarray(np.full((2, 3), 7, dtype=np.uint8), mode="L")  # w=3, h=2
    out = np.asarray(CenterCrop(4)(img))
    expected = np.zeros((4, 4), dtype=np.uint8)
    expected[1:3, 0:3] = 7  # left 0, right 1, top 1, bottom 1
    assert np.array_equal(out, expected)


def test_to_tensor_rgb_matches_numpy_reference():
    img = noise_image(5, 4)
    out = ToTensor()(img)
    ref = np.asarray(img).astype(np.float32).transpose(2, 0, 1) / 255
    assert out.dtype == torch.float32 and out.shape == (3, 4, 5)
    assert np.array_equal(out.numpy(), ref)


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGBA", 4), ("LA", 2), ("CMYK", 4)])
def test_to_tensor_channel_counts(mode, channels):
    out = ToTensor()(noise_image(6, 3).convert(mode))
    assert out.shape == (channels, 3, 6) and out.dtype == torch.float32
    assert float(out.max()) <= 1.0


def test_to_tensor_palette_yields_indices():
    img = noise_image(4, 4).convert("P")
    out = ToTensor()(img)
    assert out.shape == (1, 4, 4)
    assert np.allclose(out[0].numpy() * 255, np.asarray(img).astype(np.float32))


def test_to_tensor_mode_1_scales_to_one():
    img = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1")
    assert ToTensor()(img)[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    ("mode", "values", "dtype"),
    [
        ("I", [[-5, 70000]], torch.int32),
        ("F", [[0.5, 300.25]], torch.float32),
        ("I;16", [[3, 1000]], torch.int16),
    ],
)
def test_to_tensor_non_uint8_modes_are_unscaled(mode, values, dtype):
    np_dtype = {"I": np.int32, "F": np.float32, "I;16": np.uint16}[mode]
    img = Image.fromarray(np.array(values, dtype=np_dtype))
    assert img.mode == mode
    out = ToTensor()(img)
    assert out.dtype == dtype
    assert out[0].tolist() == values


def test_normalize_matches_numpy_reference():
    x = torch.rand(3, 4, 5)
    out = Normalize(MEAN, STD)(x)
    ref = (x.numpy() - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    assert out.dtype == torch.float32
    assert np.allclose(out.numpy(), ref, atol=1e-6)


def test_normalize_does_not_modify_input():
    x = torch.rand(3, 2, 2)
    before = x.clone()
    Normalize(MEAN, STD)(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("channels", [1, 4])
def test_normalize_rejects_wrong_channel_count(channels):
    with pytest.raises(RuntimeError):
        Normalize(MEAN, STD)(torch.rand(channels, 8, 8))


def test_normalize_rejects_integer_tensor():
    with pytest.raises(TypeError):
        Normalize(MEAN, STD)(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_compose_imagenet_pipeline_shape():
    pipeline = Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(MEAN, STD)])
    out = pipeline(noise_image(374, 267))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
