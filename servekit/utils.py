"""Handler-facing helpers that must not import torch (the frontend imports this package)."""

from __future__ import annotations

import inspect
import json
import logging
import os
from types import ModuleType
from typing import Any, Iterable, Sequence

import yaml

logger = logging.getLogger(__name__)


class PredictionException(Exception):
    """Raised by a handler to fail its batch with a chosen HTTP status (TorchServe compatible)."""

    def __init__(self, message: str, error_code: int = 500):
        self.message = message
        self.error_code = error_code
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} : {self.error_code}"


def load_label_mapping(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """Read an `index_to_name.json` class map (handlers.md §6.1); None when the file is missing."""
    if not os.path.isfile(path):
        logger.warning("'%s' is missing. Inference output will not include class name.", path)
        return None
    with open(path, encoding="utf-8") as f:
        mapping = json.load(f)
    if not isinstance(mapping, dict):
        raise ValueError('index->name JSON mapping should be in "class": "label" format.')
    if "object_type_names" in mapping and isinstance(mapping["object_type_names"], list):
        # Legacy form: a plain list of names, indexed by position.
        mapping = {str(i): name for i, name in enumerate(mapping["object_type_names"])}
    # `{"281": ["n02123045", "tabby"]}` keeps the human-readable last element.
    mapping = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in mapping.items()}
    if not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError("labels in index->name mapping must be either str or List[str]")
    return mapping


def map_class_to_label(
    probs: list[list[float]],
    mapping: dict[str, str] | None = None,
    lbl_classes: Sequence[Iterable[Any]] | None = None,
) -> list[dict[str, float]]:
    """One `{label: probability}` dict per row, in the given class order (handlers.md §6.2)."""
    if not isinstance(probs, list):
        raise TypeError("Convert classes to list before doing mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise TypeError("Mapping must be a dict")
    if lbl_classes is None:
        lbl_classes = [range(len(probs[0]))] * len(probs) if probs else []
    return [
        {_label(cls, mapping): prob for cls, prob in zip(classes, row)}
        for classes, row in zip(lbl_classes, probs)
    ]


def _label(cls: Any, mapping: dict[str, str] | None) -> str:
    return mapping[str(cls)] if mapping is not None else str(cls)


def list_classes_from_module(module: ModuleType, parent_class: type | None = None) -> list[type]:
    """Classes defined in `module` itself (not imported into it), sorted by name."""
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if parent_class is not None:
        classes = [c for c in classes if issubclass(c, parent_class)]
    return classes


def get_yaml_config(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)
