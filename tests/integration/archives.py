"""Build the test archives with servekit's own archiver (in-process API)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from servekit.archiver import ModelArchiverConfig, generate_model_archive

ASSETS = Path(__file__).parent / "assets"
LABELS = ["apple", "bicycle", "castle", "dolphin", "elephant", "forest", "guitar", "harbor", "island", "jungle"]


def build_echo(store: Path, name: str = "echo", version: str = "1.0") -> Path:
    return generate_model_archive(ModelArchiverConfig(
        model_name=name, version=version, handler=str(ASSETS / "echo_handler.py"), export_path=str(store),
        force=True,
    ))


def build_tiny_classifier(store: Path, work: Path, name: str = "tiny") -> Path:
    import torch

    torch.manual_seed(0)
    from importlib import util

    spec = util.spec_from_file_location("tiny_net", ASSETS / "tiny_net.py")
    assert spec and spec.loader
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "tiny.pth"
    torch.save(module.TinyNet().state_dict(), weights)
    labels = work / "index_to_name.json"
    labels.write_text(json.dumps({str(i): label for i, label in enumerate(LABELS)}))
    return generate_model_archive(ModelArchiverConfig(
        model_name=name, version="1.0", handler="image_classifier", model_file=str(ASSETS / "tiny_net.py"),
        serialized_file=str(weights), extra_files=str(labels), export_path=str(store), force=True,
    ))


def write_corrupt_archives(store: Path, good: Path) -> tuple[Path, Path]:
    truncated = store / "truncated.mar"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = store / "garbage.mar"
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    return truncated, garbage


def copy_into(store: Path, archive: Path) -> Path:
    target = store / archive.name
    if archive.resolve() != target.resolve():
        shutil.copy(archive, target)
    return target
