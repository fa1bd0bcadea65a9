"""`Context`: what a handler sees of its model, worker and current batch (handlers.md §4).

One Context is created per worker at load time and reused for every batch; the worker replaces
`request_ids` and `request_processor` before each batch.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from servekit.worker.metrics import MetricsCache


def _env_header(name: str) -> str:
    """Sequence-batching header names are configurable through TS_<NAME> (default ts_<name>)."""
    return os.environ.get(f"TS_{name.upper()}", f"ts_{name}")


class RequestProcessor:
    """Per-request state of one batch: request headers in, status and headers out."""

    def __init__(self, request_header: dict[str, Any]):
        self.request_header = request_header
        self.status_code = 200
        self.reason_phrase: str | None = None
        self.response_header: dict[str, str] = {}

    def get_request_property(self, key: str) -> Any:
        return self.request_header.get(key)

    def get_request_properties(self) -> dict[str, Any]:
        return self.request_header

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self.status_code = code
        self.reason_phrase = reason_phrase

    def get_response_status_code(self) -> int:
        return self.status_code

    def get_response_status_phrase(self) -> str | None:
        return self.reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        self.response_header[key] = value

    def get_response_headers(self) -> dict[str, str]:
        return self.response_header

    def get_response_header(self, key: str) -> str | None:
        return self.response_header.get(key)


class Context:
    """Handed to `initialize(context)` once and to `handle(data, context)` for every batch.

    Lives in the worker process; the same object is reused across batches.
    """

    def __init__(
        self,
        model_name: str,
        model_dir: str,
        manifest: dict[str, Any] | None,
        batch_size: int,
        gpu: int | None,
        server_version: str,
        limit_max_image_pixels: bool = True,
        metrics: MetricsCache | None = None,
        model_yaml_config: dict[str, Any] | None = None,
    ):
        self.model_name = model_name
        self.manifest = manifest
        self._system_properties: dict[str, Any] = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "MMS",  # TorchServe's legacy name; handlers may compare against it
            "server_version": server_version,
            "limit_max_image_pixels": limit_max_image_pixels,
        }
        self.model_yaml_config: dict[str, Any] = model_yaml_config or {}
        self.metrics = metrics if metrics is not None else MetricsCache(model_name)
        self.request_ids: dict[int, str] | None = None
        self.request_processor: list[RequestProcessor] = []
        self.stopping_criteria: list[Callable[[Any], bool]] | None = None
        self.cl_socket: Any = None  # set by the worker loop before each batch (streaming)
        self.header_key_sequence_id = _env_header("request_sequence_id")
        self.header_key_sequence_start = _env_header("request_sequence_start")
        self.header_key_sequence_end = _env_header("request_sequence_end")

    @property
    def system_properties(self) -> dict[str, Any]:
        return dict(self._system_properties)

    def get_request_id(self, idx: int = 0) -> str | None:
        return self.request_ids.get(idx) if self.request_ids is not None else None

    def get_request_header(self, idx: int, key: str) -> Any:
        return self.request_processor[idx].get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, Any]:
        return self.request_processor[idx].get_request_properties()

    def get_sequence_id(self, idx: int) -> Any:
        return self.get_request_header(idx, self.header_key_sequence_id)

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.request_processor[idx].report_status(code, phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for processor in self.request_processor:
            processor.report_status(code, phrase)

    def get_response_status(self, idx: int) -> tuple[int, str | None]:
        processor = self.request_processor[idx]
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.request_processor[idx].add_response_property(key, value)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        return self.request_processor[idx].get_response_headers()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.get_response_headers(idx).get("content-type")
