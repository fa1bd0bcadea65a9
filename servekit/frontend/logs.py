"""The `logs/` directory: ts_log, access_log, model_log and model_metrics, TorchServe's layouts."""

from __future__ import annotations

import json
import logging
import logging.config
import logging.handlers
import os
import sys
from pathlib import Path

DATEFMT = "%Y-%m-%dT%H:%M:%S"
TS_FORMAT = "%(asctime)s,%(msecs)03d [%(levelname)-5s] %(worker_thread)s %(name)s - %(message)s"
PLAIN_FORMAT = "%(asctime)s,%(msecs)03d - %(message)s"
MAX_BYTES = 100 * 1024 * 1024


class _ThreadName(logging.Filter):
    """Worker output carries its worker's name (W-9000-model_1.0-stdout); other lines the thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker_thread"):
            record.worker_thread = record.threadName
        return True


def _file(path: Path, fmt: str) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=5)
    handler.setFormatter(logging.Formatter(fmt, DATEFMT))
    handler.addFilter(_ThreadName())
    return handler


def setup_logging(level: str, log_config: str | None) -> Path:
    log_dir = Path(os.environ.get("LOG_LOCATION", "logs")).absolute()
    metrics_dir = Path(os.environ.get("METRICS_LOCATION", str(log_dir))).absolute()
    log_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    if log_config:
        _apply_user_config(Path(log_config))
        return log_dir
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(TS_FORMAT, DATEFMT))
    console.addFilter(_ThreadName())
    root.addHandler(console)
    root.addHandler(_file(log_dir / "ts_log.log", TS_FORMAT))
    # Dedicated loggers also propagate to the console and ts_log, as TorchServe's do.
    logging.getLogger("ACCESS_LOG").addHandler(_file(log_dir / "access_log.log", PLAIN_FORMAT))
    logging.getLogger("MODEL_LOG").addHandler(_file(log_dir / "model_log.log", TS_FORMAT))
    logging.getLogger("MODEL_METRICS").addHandler(_file(metrics_dir / "model_metrics.log", PLAIN_FORMAT))
    logging.getLogger("TS_METRICS").addHandler(_file(metrics_dir / "ts_metrics.log", PLAIN_FORMAT))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return log_dir


def _apply_user_config(path: Path) -> None:
    """`--log-config`: a dictConfig in YAML/JSON, or a fileConfig INI file."""
    if path.suffix in (".yaml", ".yml", ".json"):
        import yaml

        text = path.read_text()
        logging.config.dictConfig(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
    else:
        logging.config.fileConfig(path, disable_existing_loggers=False)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ThreadName())
