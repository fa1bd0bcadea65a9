"""The worker-side handler contract, independent of sockets (handlers.md §1-3).

`Service.load` resolves and initialises the handler named by a `LoadModel`; `Service.predict`
runs one batch through it and turns the outcome into a `BatchResult`. Both run in the worker
process; the worker loop owns the connection and only moves protocol messages.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import logging
import os
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from servekit.protocol import BatchResult, InputParam, LoadModel, LoadResult, Prediction, WorkerRequest
from servekit.utils import PredictionException, get_yaml_config, list_classes_from_module
from servekit.version import TORCHSERVE_COMPAT_VERSION
from servekit.worker.context import Context, RequestProcessor

logger = logging.getLogger(__name__)

BUILTIN_HANDLER_PACKAGE = "servekit.handlers"
ENVELOPE_PACKAGE = "servekit.handlers.request_envelope"
MANIFEST_PATH = os.path.join("MAR-INF", "MANIFEST.json")
TRACEBACK_MAX_LINES = 20
_SERVEKIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)

EntryPoint = Callable[[Any, Context], Any]


class ModelLoadError(Exception):
    """Service.load failed; the original exception is `__cause__`."""

    def __init__(self, model_name: str, cause: BaseException):
        super().__init__(f"Failed to load model {model_name}: {type(cause).__name__}: {cause}")
        self.model_name = model_name
        self.__cause__ = cause


@dataclass(frozen=True)
class _Handler:
    entry_point: EntryPoint
    initialize: Callable[[Context], Any]


class Service:
    """A loaded handler plus its Context; one per worker process."""

    def __init__(self, context: Context, entry_point: EntryPoint):
        self.context = context
        self.entry_point = entry_point

    @classmethod
    def load(cls, req: LoadModel) -> Service:
        """Import the handler, build the Context and run the handler's initializer.

        Raises ModelLoadError (original exception as `__cause__`); `load_failure` turns it
        into the LoadResult the frontend expects.
        """
        try:
            return cls._load(req)
        except Exception as exc:
            raise ModelLoadError(req.model_name, exc) from exc

    @classmethod
    def _load(cls, req: LoadModel) -> Service:
        if req.torch_threads > 0:
            import torch

            torch.set_num_threads(req.torch_threads)
        _make_importable(req.model_path)
        manifest = read_manifest(req.model_path)
        handler = resolve_handler(req.handler)
        entry_point = handler.entry_point
        if req.envelope:
            entry_point = wrap_envelope(req.envelope, entry_point)
        context = Context(
            req.model_name, req.model_path, manifest, req.batch_size, req.gpu,
            TORCHSERVE_COMPAT_VERSION, req.limit_max_image_pixels,
            model_yaml_config=read_model_yaml(req.model_path, manifest),
        )
        handler.initialize(context)  # deliberately not wrapped by the envelope
        return cls(context, entry_point)

    def predict(self, requests: list[WorkerRequest]) -> BatchResult:
        """Run one batch; any failure fails the whole batch with one code and message."""
        data = self._prepare(requests)
        start = time.perf_counter()
        try:
            outputs = self.entry_point(data, self.context)
        except Exception as exc:
            _log_prediction_failure(self.context.model_name, exc)
            return BatchResult(*prediction_error(exc))
        elapsed_ms = round((time.perf_counter() - start) * 1000, 2)
        self.context.metrics.add_time("PredictionTime", elapsed_ms, None, "ms")
        return self._result(requests, outputs)

    def _prepare(self, requests: list[WorkerRequest]) -> list[dict[str, Any]]:
        decode = _decoding_enabled()
        ids = {i: r.request_id for i, r in enumerate(requests)}
        self.context.request_ids = ids
        self.context.metrics.request_ids = ids
        self.context.request_processor = [RequestProcessor(header_map(r)) for r in requests]
        return [{p.name: decode_value(p, decode) for p in r.params} for r in requests]

    def _result(self, requests: list[WorkerRequest], outputs: Any) -> BatchResult:
        if not isinstance(outputs, list):
            logger.warning("model %s: predict output is not a list", self.context.model_name)
            return BatchResult(503, "Invalid model predict output")
        if len(outputs) != len(requests):
            logger.warning(
                "model %s: number of batch response mismatched, expect: %d, got: %d",
                self.context.model_name, len(requests), len(outputs),
            )
            return BatchResult(503, "number of batch response mismatched")
        try:
            bodies = [serialize(v) for v in outputs]
        except (TypeError, ValueError) as exc:
            logger.warning("model %s: cannot serialize output: %s", self.context.model_name, exc)
            return BatchResult(503, "Unsupported model output data type.")
        preds = [self._prediction(i, r.request_id, b) for i, (r, b) in enumerate(zip(requests, bodies))]
        return BatchResult(200, "Prediction success", preds)

    def _prediction(self, idx: int, request_id: str, body: bytes) -> Prediction:
        processor = self.context.request_processor[idx]
        headers = {str(k): str(v) for k, v in processor.get_response_headers().items()}
        content_type = next((headers.pop(k) for k in list(headers) if k.lower() == "content-type"), None)
        return Prediction(
            request_id, body, processor.status_code, processor.reason_phrase or "",
            content_type, headers,
        )


# --- loading -------------------------------------------------------------------------------


def _make_importable(model_dir: str) -> None:
    # Handler and model files are imported top-level from the model dir (handlers.md §1.3).
    if model_dir not in sys.path:
        sys.path.insert(0, model_dir)
    importlib.invalidate_caches()


def read_manifest(model_dir: str) -> dict[str, Any] | None:
    path = os.path.join(model_dir, MANIFEST_PATH)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        manifest: dict[str, Any] = json.load(f)
    return manifest


def read_model_yaml(model_dir: str, manifest: dict[str, Any] | None) -> dict[str, Any]:
    config_file = ((manifest or {}).get("model") or {}).get("configFile")
    if not config_file:
        return {}
    # An empty YAML file loads as None; handlers expect a dict.
    return get_yaml_config(os.path.join(model_dir, config_file)) or {}


def resolve_handler(handler: str) -> _Handler:
    """handlers.md §1.3: model-dir module first, then servekit's built-in handler package."""
    module_part, _, function_name = handler.partition(":")
    if module_part.endswith(".py"):
        module_part = module_part[: -len(".py")]
    module_name = module_part.rsplit("/", 1)[-1]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        # The whole original string names the built-in module; any ":function" is dropped.
        module = importlib.import_module(f"{BUILTIN_HANDLER_PACKAGE}.{handler}")
        function_name = ""
    function_name = function_name or "handle"
    if hasattr(module, function_name):
        return _function_handler(getattr(module, function_name))
    return _class_handler(module)


def _function_handler(fn: EntryPoint) -> _Handler:
    # Function handlers initialise themselves on a first call with data=None.
    return _Handler(entry_point=fn, initialize=functools.partial(fn, None))


def _class_handler(module: Any) -> _Handler:
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        raise ValueError(
            f"Expected only one class in custom service code or a function entry point {classes}"
        )
    handler_class = classes[0]
    if not hasattr(handler_class, "handle"):
        raise ValueError(f"Expect handle method in class {handler_class}")
    instance = handler_class()
    # A class without `initialize` fails the load here with AttributeError, as in TorchServe.
    return _Handler(entry_point=instance.handle, initialize=instance.initialize)


def wrap_envelope(name: str, entry_point: EntryPoint) -> EntryPoint:
    """Wrap the entry point in the request envelope `name` (handlers.md §9)."""
    module = importlib.import_module(f"{ENVELOPE_PACKAGE}.{name}")
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        raise ValueError(f"Expected only one class in envelope module {name}: {classes}")
    handle: EntryPoint = classes[0](entry_point).handle
    return handle


def load_failure(exc: BaseException, model_name: str | None = None) -> LoadResult:
    """Map a load exception to the LoadResult sent back (workers-batching.md §3.2).

    servekit answers every exception, not only RuntimeError, so the frontend can show why.
    """
    cause = exc.__cause__ if isinstance(exc, ModelLoadError) and exc.__cause__ else exc
    if model_name is None:
        model_name = exc.model_name if isinstance(exc, ModelLoadError) else "?"
    detail = handler_traceback(cause)
    if isinstance(cause, MemoryError) or (isinstance(cause, RuntimeError) and "CUDA" in str(cause)):
        return LoadResult(507, "System out of memory", detail)
    message = f"Failed to load model {model_name}: {type(cause).__name__}: {cause}"
    return LoadResult(500, message, detail)


def handler_traceback(exc: BaseException) -> str:
    """The exception chain, formatted like Python does, keeping only frames of user code and
    servekit (importlib, stdlib and third-party frames are noise for someone fixing a handler).
    At most TRACEBACK_MAX_LINES lines; the tail is kept because it names the error."""
    lines = "".join(_format_chain(exc, set())).splitlines()
    return "\n".join(lines[-TRACEBACK_MAX_LINES:])


def _format_chain(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    parts: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        parts += _format_chain(exc.__cause__, seen)
        parts.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif exc.__context__ is not None and not exc.__suppress_context__ and id(exc.__context__) not in seen:
        parts += _format_chain(exc.__context__, seen)
        parts.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_handler_frame(f.filename)]
    if frames:
        parts.append("Traceback (most recent call last):\n")
        parts += [_format_frame(f) for f in frames]
    parts += traceback.format_exception_only(type(exc), exc)
    return parts


def _format_frame(frame: traceback.FrameSummary) -> str:
    # Like traceback.format_list, minus the ^^^ marker lines, to keep the detail short.
    text = f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
    return text + (f"    {frame.line.strip()}\n" if frame.line else "")


def _is_handler_frame(filename: str) -> bool:
    if filename.startswith(_SERVEKIT_DIR):
        return True
    return not filename.startswith("<") and not filename.startswith(_LIBRARY_DIRS)


# --- batches -------------------------------------------------------------------------------


def _decoding_enabled() -> bool:
    value = os.environ.get("TS_DECODE_INPUT_REQUEST")
    return value is None or value == "true"


def decode_value(param: InputParam, decode: bool) -> Any:
    """JSON and text parameters arrive decoded; everything else stays bytes (handlers.md §2)."""
    mime = (param.content_type or "").split(";", 1)[0].strip()
    if not decode or not mime:
        return param.value
    try:
        if mime == "application/json":
            return json.loads(param.value.decode("utf-8"))
        if mime.startswith("text"):
            return param.value.decode("utf-8")
    except ValueError:  # covers UnicodeDecodeError and JSONDecodeError
        logger.warning("Failed to decode parameter %r as %s; passing raw bytes", param.name, mime)
    return param.value


def header_map(req: WorkerRequest) -> dict[str, Any]:
    """Request headers plus one `{"content-type": ...}` entry per parameter; real headers win."""
    headers: dict[str, Any] = {p.name: {"content-type": p.content_type or ""} for p in req.params}
    headers.update(req.headers)
    return headers


def serialize(value: Any) -> bytes:
    """One output element to response bytes (handlers.md §3); TypeError/ValueError if impossible."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    torch = sys.modules.get("torch")  # a Tensor can only exist if torch was imported
    if torch is not None and isinstance(value, torch.Tensor):
        buf = io.BytesIO()
        torch.save(value, buf)
        return buf.getvalue()
    return json.dumps(value, indent=2).encode("utf-8")


def _log_prediction_failure(model_name: str, exc: BaseException) -> None:
    # The traceback only; request payloads never go to the log.
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(f"Prediction failed for model {model_name}:\n{text}")
    sys.stderr.flush()


def prediction_error(exc: BaseException) -> tuple[int, str]:
    """Batch-level (code, message) for an exception raised by the entry point."""
    if isinstance(exc, MemoryError):
        return 507, "Out of resources"
    if isinstance(exc, PredictionException):
        return exc.error_code, exc.message
    if "CUDA" in str(exc):
        return 507, "Out of resources"
    return 503, "Prediction failed"
