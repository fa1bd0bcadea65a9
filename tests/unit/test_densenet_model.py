"""The DenseNet-161 example model must load torchvision's densenet161 checkpoints as they are."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "image_classifier" / "densenet_161"
BLOCKS = (6, 12, 36, 24)
BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
TORCHVISION_KEY_PATTERNS = [
    re.compile(r"^features\.conv0\.weight$"),
    re.compile(rf"^features\.norm[05]\.{BN}$"),
    re.compile(rf"^features\.denseblock[1-4]\.denselayer\d+\.(norm[12]\.{BN}|conv[12]\.weight)$"),
    re.compile(rf"^features\.transition[1-3]\.(norm\.{BN}|conv\.weight)$"),
    re.compile(r"^classifier\.(weight|bias)$"),
]


@pytest.fixture(scope="module")
def model_module() -> ModuleType:
    # Loaded under a unique name so no bare `model` module leaks into other tests.
    spec = importlib.util.spec_from_file_location("densenet161_example_model", EXAMPLE_DIR / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(model_module) -> torch.nn.Module:
    torch.manual_seed(0)
    return model_module.DenseNet161().eval()


def expected_key_count() -> int:
    bn, conv = 5, 1  # BatchNorm: weight, bias, running_mean, running_var, num_batches_tracked
    per_layer = 2 * bn + 2 * conv
    transitions = (len(BLOCKS) - 1) * (bn + conv)
    return sum(BLOCKS) * per_layer + transitions + conv + bn + bn + 2  # conv0, norm0, norm5, fc


def test_exactly_one_module_level_class(model_module):
    from servekit.utils import list_classes_from_module

    assert [c.__name__ for c in list_classes_from_module(model_module)] == ["DenseNet161"]


def test_state_dict_keys_follow_torchvision_naming(model):
    keys = list(model.state_dict())
    assert len(keys) == expected_key_count() == 967
    unmatched = [k for k in keys if not any(p.match(k) for p in TORCHVISION_KEY_PATTERNS)]
    assert unmatched == []
    for block, layers in enumerate(BLOCKS, start=1):
        found = {int(m.group(1)) for k in keys
                 if (m := re.match(rf"features\.denseblock{block}\.denselayer(\d+)\.", k))}
        assert found == set(range(1, layers + 1))


def test_shapes_match_densenet161(model):
    sd = model.state_dict()
    assert sd["features.conv0.weight"].shape == (96, 3, 7, 7)
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (192, 96, 1, 1)
    assert sd["features.denseblock1.denselayer6.conv2.weight"].shape == (48, 192, 3, 3)
    assert sd["features.transition1.conv.weight"].shape == (192, 384, 1, 1)
    assert sd["features.transition3.conv.weight"].shape == (1056, 2112, 1, 1)
    assert sd["features.norm5.weight"].shape == (2208,)
    assert sd["classifier.weight"].shape == (1000, 2208)
    assert sum(p.numel() for p in model.parameters()) == 28_681_000


def test_legacy_checkpoint_keys_are_remapped(model, model_module):
    legacy = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the 2017 checkpoints predate this buffer
        legacy[re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.manual_seed(1)
    fresh = model_module.DenseNet161()
    fresh.load_state_dict(legacy, strict=True)
    assert torch.equal(fresh.features.denseblock3.denselayer36.conv2.weight,
                       model.features.denseblock3.denselayer36.conv2.weight)


def test_new_style_state_dict_loads_strict(model, model_module):
    fresh = model_module.DenseNet161()
    fresh.load_state_dict(model.state_dict(), strict=True)


def test_forward_gives_1000_logits(model):
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_make_weights_writes_loadable_random_weights(tmp_path, model):
    out = tmp_path / "w.pth"
    proc = subprocess.run([sys.executable, "make_weights.py", str(out)], cwd=EXAMPLE_DIR,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "NOT trained" in proc.stdout
    state = torch.load(out, weights_only=True)
    assert torch.equal(state["classifier.weight"], model.state_dict()["classifier.weight"])  # seed 0
