"""DenseNet-161 in plain torch, with torchvision's `densenet161` state_dict layout.

Keys match torchvision exactly (`features.denseblock1.denselayer1.norm1.weight`, ...), so a
torchvision checkpoint loads with strict=True. The official `densenet161-8d451a50.pth` predates
that naming and spells layers `norm.1`/`conv.2`; `_load_from_state_dict` renames those on load.

The archive rule is "exactly one class defined in model.py", so the building blocks below are
functions returning torch containers, and the one block needing a custom forward is nested.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

GROWTH_RATE = 48
BLOCK_CONFIG = (6, 12, 36, 24)
NUM_INIT_FEATURES = 96
BN_SIZE = 4
NUM_CLASSES = 1000

# `...denselayer3.norm.1.weight` (old checkpoints) → `...denselayer3.norm1.weight`
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")


def dense_layer(in_features: int) -> nn.Sequential:
    """BN-ReLU-1x1 conv (bottleneck) then BN-ReLU-3x3 conv producing GROWTH_RATE maps."""
    bottleneck = BN_SIZE * GROWTH_RATE
    return nn.Sequential(OrderedDict([
        ("norm1", nn.BatchNorm2d(in_features)),
        ("relu1", nn.ReLU(inplace=True)),
        ("conv1", nn.Conv2d(in_features, bottleneck, kernel_size=1, stride=1, bias=False)),
        ("norm2", nn.BatchNorm2d(bottleneck)),
        ("relu2", nn.ReLU(inplace=True)),
        ("conv2", nn.Conv2d(bottleneck, GROWTH_RATE, kernel_size=3, stride=1, padding=1, bias=False)),
    ]))


def transition(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("norm", nn.BatchNorm2d(in_features)),
        ("relu", nn.ReLU(inplace=True)),
        ("conv", nn.Conv2d(in_features, out_features, kernel_size=1, stride=1, bias=False)),
        ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
    ]))


def stem() -> list[tuple[str, nn.Module]]:
    return [
        ("conv0", nn.Conv2d(3, NUM_INIT_FEATURES, kernel_size=7, stride=2, padding=3, bias=False)),
        ("norm0", nn.BatchNorm2d(NUM_INIT_FEATURES)),
        ("relu0", nn.ReLU(inplace=True)),
        ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
    ]


def remap_legacy_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """Rename old-style `norm.1`/`conv.2` keys in place (what torchvision does when loading)."""
    for key in list(state_dict):
        match = _LEGACY_KEY.match(key)
        if match and key.startswith(prefix):
            state_dict[match.group(1) + match.group(2)] = state_dict.pop(key)


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal convs, unit BN scale, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
        elif isinstance(module, nn.Linear):
            nn.init.constant_(module.bias, 0)


class DenseNet161(nn.Module):
    """DenseNet-161 (growth 48, blocks 6/12/36/24, 96 initial features), 1000 ImageNet classes."""

    class _DenseBlock(nn.ModuleDict):
        """Each layer sees the concatenation of the block input and all earlier layer outputs."""

        def __init__(self, num_layers: int, in_features: int):
            super().__init__()
            for i in range(num_layers):
                self.add_module(f"denselayer{i + 1}", dense_layer(in_features + i * GROWTH_RATE))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = [x]
            for layer in self.values():
                features.append(layer(torch.cat(features, 1)))
            return torch.cat(features, 1)

    def __init__(self) -> None:
        super().__init__()
        modules = stem()
        num_features = NUM_INIT_FEATURES
        for i, num_layers in enumerate(BLOCK_CONFIG):
            modules.append((f"denseblock{i + 1}", self._DenseBlock(num_layers, num_features)))
            num_features += num_layers * GROWTH_RATE
            if i != len(BLOCK_CONFIG) - 1:
                modules.append((f"transition{i + 1}", transition(num_features, num_features // 2)))
                num_features //= 2
        modules.append(("norm5", nn.BatchNorm2d(num_features)))
        self.features = nn.Sequential(OrderedDict(modules))
        self.classifier = nn.Linear(num_features, NUM_CLASSES)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # Runs before any child loads, so renamed keys reach the right submodules.
        remap_legacy_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
