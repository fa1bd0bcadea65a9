"""Write a randomly initialised DenseNet-161 state_dict for trying the example end to end.

    python make_weights.py OUT.pth

These are NOT trained ImageNet weights: the model is initialised locally with
torch.manual_seed(0) (nothing is downloaded), so its predictions are meaningless. For real
predictions use torchvision's trained checkpoint instead, e.g. `densenet161-8d451a50.pth`
(https://download.pytorch.org/models/densenet161-8d451a50.pth), fetched yourself and passed to
the archiver as `--serialized-file`; `DenseNet161` loads both its old and new key layouts.
"""

from __future__ import annotations

import sys

import torch

from model import DenseNet161


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python {argv[0]} OUT.pth", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    model = DenseNet161()
    torch.save(model.state_dict(), argv[1])
    print(f"wrote {argv[1]}: RANDOM weights (seed 0), NOT trained on ImageNet; predictions are "
          "meaningless. Use torchvision's densenet161-8d451a50.pth for real results.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
