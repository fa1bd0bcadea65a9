"""The built-in `image_classifier` handler end to end, with a tiny eager model (handlers.md §7)."""

from __future__ import annotations

import base64
import io
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from servekit.handlers.image_classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from servekit.handlers.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor
from servekit.protocol import InputParam, LoadModel, WorkerRequest
from servekit.worker.service import Service

NUM_CLASSES = 7
TINY_MODEL = """
import torch
from torch import nn

class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 7)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)) * 10)
"""
LABELS = {"0": "zero", "1": ["n01", "one"], "2": "two", "3": "three", "4": "four", "5": "five", "6": "six"}


@pytest.fixture
def model_dir(tmp_path: Path):
    """A model dir holding the tiny model; `with_labels` adds index_to_name.json."""
    path_before = list(sys.path)

    def make(with_labels: bool = True) -> Path:
        (tmp_path / "tiny_model.py").write_text(textwrap.dedent(TINY_MODEL))
        namespace: dict[str, object] = {}
        exec(textwrap.dedent(TINY_MODEL), namespace)
        torch.manual_seed(0)
        torch.save(namespace["TinyNet"]().state_dict(), tmp_path / "tiny.pth")  # type: ignore[operator]
        if with_labels:
            (tmp_path / "index_to_name.json").write_text(json.dumps(LABELS))
        manifest = {"model": {"modelName": "tiny", "handler": "image_classifier",
                              "modelFile": "tiny_model.py", "serializedFile": "tiny.pth"}}
        (tmp_path / "MAR-INF").mkdir()
        (tmp_path / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
        return tmp_path

    yield make
    sys.path[:] = path_before
    sys.modules.pop("tiny_model", None)


@pytest.fixture
def service(model_dir) -> Service:
    return Service.load(LoadModel("tiny", str(model_dir()), "image_classifier"))


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def photo(width: int = 300, height: int = 200, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def predict(service: Service, *values: tuple[str | None, bytes]) -> list[object]:
    reqs = [WorkerRequest(f"r{i}", {}, [InputParam("body", ct, v)]) for i, (ct, v) in enumerate(values)]
    result = service.predict(reqs)
    assert (result.code, result.message) == (200, "Prediction success")
    return [json.loads(p.body) for p in result.predictions]


def test_loads_through_builtin_fallback(service):
    handler = service.entry_point.__self__
    assert isinstance(handler, ImageClassifier)
    assert handler.model.training is False and handler.mapping["1"] == "one"


def test_top5_with_labels_matches_manual_pipeline(service):
    png = encode(photo(), "PNG")
    (out,) = predict(service, ("image/png", png))
    names = [v[-1] if isinstance(v, list) else v for v in LABELS.values()]
    assert len(out) == 5 and set(out) <= set(names)
    probs = list(out.values())
    assert probs == sorted(probs, reverse=True)

    pipeline = Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    model = service.entry_point.__self__.model
    with torch.inference_mode():
        ps = torch.softmax(model(pipeline(Image.open(io.BytesIO(png))).unsqueeze(0)), dim=1)[0]
    expected = sorted(zip(names, ps.tolist()), key=lambda t: -t[1])[:5]
    assert list(out.items()) == [(n, pytest.approx(p, abs=1e-6)) for n, p in expected]


def test_labels_default_to_class_indices(model_dir):
    service = Service.load(LoadModel("tiny", str(model_dir(with_labels=False)), "image_classifier"))
    (out,) = predict(service, (None, encode(photo(), "JPEG")))
    assert all(k.isdigit() and 0 <= int(k) < NUM_CLASSES for k in out)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA"])
def test_non_rgb_images_classify(service, mode):
    # servekit deviation: TorchServe fails these with 503 (1- or 4-channel Normalize).
    (out,) = predict(service, ("image/png", encode(photo().convert(mode), "PNG")))
    assert len(out) == 5


def test_base64_string_body(service):
    jpeg = encode(photo(), "JPEG")
    text = base64.b64encode(jpeg).decode()
    (as_text,) = predict(service, ("text/plain", text.encode()))
    (as_json,) = predict(service, ("application/json", json.dumps(text).encode()))
    (as_bytes,) = predict(service, (None, jpeg))
    assert as_text == as_json == as_bytes


def test_batch_of_differently_sized_images(service):
    outs = predict(service, (None, encode(photo(300, 200), "PNG")), (None, encode(photo(120, 500, 1), "PNG")))
    assert len(outs) == 2 and all(len(o) == 5 for o in outs)


def test_json_tensor_body_is_used_without_transforms(service):
    chw = torch.rand(3, 8, 8).tolist()
    (out,) = predict(service, ("application/json", json.dumps(chw).encode()))
    assert len(out) == 5


def test_topk_is_configurable(service):
    handler = service.entry_point.__self__
    assert handler.get_max_result_classes() == 5
    handler.set_max_result_classes(2)
    (out,) = predict(service, (None, encode(photo(), "PNG")))
    assert len(out) == 2


def test_undecodable_image_fails_batch(service):
    result = service.predict([WorkerRequest("r", {}, [InputParam("body", None, b"not an image")])])
    assert (result.code, result.message) == (503, "Prediction failed")


def test_limit_max_image_pixels_false_lifts_pillow_limit(model_dir):
    before = Image.MAX_IMAGE_PIXELS
    try:
        Service.load(LoadModel("tiny", str(model_dir()), "image_classifier", limit_max_image_pixels=False))
        assert Image.MAX_IMAGE_PIXELS is None
    finally:
        Image.MAX_IMAGE_PIXELS = before
