"""Effective per-model settings from the register call, the archive's model-config YAML and
config.properties, with TorchServe's precedence (http-api.md §5.3, model-config.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from servekit.config import Config
from servekit.manifest import Manifest

log = logging.getLogger("servekit.models")
INT_KEYS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout", "startupTimeout",
            "jobQueueSize", "maxRetryTimeoutInSec")


def read_model_yaml(manifest: Manifest, model_dir: Path) -> dict[str, int]:
    """The frontend keys of the archive's model-config YAML; a bad file is logged and ignored."""
    name = manifest.model.config_file
    if not name:
        return {}
    try:
        doc = yaml.safe_load((model_dir / name).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        log.warning("Failed to parse model config file %s: %s", name, exc)
        return {}
    if not isinstance(doc, dict):
        return {}
    # Types are strict as in TorchServe: a YAML int, never a float or a string.
    return {k: doc[k] for k in INT_KEYS if isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool)}


def _positive(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and value > 0:
            return value
    return None


def settings_for(config: Config, req: Any, manifest: Manifest, model_dir: Path, startup: bool) -> dict[str, Any]:
    yml = read_model_yaml(manifest, model_dir)
    props = config.models.get(manifest.model.model_name or "", {}).get(manifest.model.model_version or "", {})
    has_yaml = bool(manifest.model.config_file)
    batch_size = req.batch_size if req.batch_size is not None else _positive(yml.get("batchSize"), props.get("batchSize")) or 1
    delay = req.max_batch_delay if req.max_batch_delay is not None else (
        _positive(yml.get("maxBatchDelay"), props.get("maxBatchDelay")) or 100)
    response = _timeout(has_yaml, yml.get("responseTimeout"), props.get("responseTimeout"), req.response_timeout,
                        config.default_response_timeout)
    startup_t = _timeout(has_yaml, yml.get("startupTimeout"), props.get("startupTimeout"), req.startup_timeout,
                         config.default_startup_timeout)
    min_w, max_w = _worker_counts(config, req, yml, props, startup)
    return {
        "batch_size": batch_size, "max_batch_delay": delay, "response_timeout": response,
        "startup_timeout": startup_t, "min_workers": min_w, "max_workers": max_w,
        "job_queue_size": _positive(yml.get("jobQueueSize")) or config.job_queue_size,
        "max_retry_timeout": _positive(yml.get("maxRetryTimeoutInSec")) or 300,
    }


def _timeout(has_yaml: bool, yml: Any, props: Any, api: int | None, default: int) -> int:
    # TorchServe quirk kept on purpose: any model-config present yields its value or 120,
    # so the API parameter only counts for archives without one.
    if has_yaml:
        return _positive(yml) or 120
    return _positive(props) or (api if api is not None and api > 0 else default)


def _worker_counts(config: Config, req: Any, yml: dict[str, int], props: dict[str, Any], startup: bool) -> tuple[int, int]:
    if startup:
        default = config.default_workers_per_model if config.default_workers_per_model > 0 else (os.cpu_count() or 1)
        min_w = _positive(props.get("minWorkers")) or default
        max_w = _positive(props.get("maxWorkers")) or min_w
    else:
        min_w = max_w = req.initial_workers if req.initial_workers is not None else config.default_workers_per_model
    y_min, y_max = yml.get("minWorkers", 0), yml.get("maxWorkers", 0)
    if y_min > 0 and y_max >= y_min:
        return y_min, y_max
    return min_w, max(max_w, min_w)
