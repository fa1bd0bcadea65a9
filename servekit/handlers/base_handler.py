"""BaseHandler: load a model once per worker, then preprocess → inference → postprocess.

TorchServe-compatible (handlers.md §5). Loading strategies are small functions picked once
from the manifest, instead of one method branching over every accelerator and format.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import time
from typing import Any, Callable, Optional, TypeVar

import torch

from servekit.utils import list_classes_from_module, load_label_mapping
from servekit.worker.context import Context

logger = logging.getLogger(__name__)

PT2_BACKENDS = (
    "eager", "aot_eager", "inductor", "nvfuser", "aot_nvfuser", "aot_cudagraphs", "ofi",
    "fx2trt", "onnxrt", "ipex", "torchxla_trace_once", "openvino", "tensorrt", "hpu_backend",
)

ModelLoader = Callable[[str, str, Optional[str], torch.device], Any]
F = TypeVar("F", bound=Callable[..., Any])


# --- device and model loading --------------------------------------------------------------


def select_device(gpu_id: int | None) -> tuple[torch.device, str]:
    """(device, map_location): the assigned GPU when CUDA is usable, else the CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        device = torch.device(f"cuda:{gpu_id}")
        if torch.cuda.get_device_capability(device) >= (8, 0):
            # TF32 matmuls on Ampere and newer, as TorchServe enables.
            torch.set_float32_matmul_precision("high")
        return device, "cuda"
    return torch.device("cpu"), "cpu"


def load_eager(model_dir: str, model_file: str, pt_path: str | None, device: torch.device) -> Any:
    """Instantiate the one class of `model_file`, then load the optional state_dict (strict)."""
    if not os.path.isfile(os.path.join(model_dir, model_file)):
        raise RuntimeError("Missing the model.py file")
    if model_dir not in sys.path:
        sys.path.insert(0, model_dir)
    module = importlib.import_module(model_file.split(".")[0])
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        raise ValueError(f"Expected only one class as model definition. {classes}")
    model = classes[0]()
    if pt_path:
        state_dict = torch.load(pt_path, map_location=device, weights_only=True)
        model.load_state_dict(state_dict)
    return model.to(device).eval()


def load_torchscript(model_dir: str, model_file: str, pt_path: str | None, device: torch.device) -> Any:
    assert pt_path is not None
    return torch.jit.load(pt_path, map_location=device).eval()  # type: ignore[no-untyped-call]


def no_weights(model_dir: str, model_file: str, pt_path: str | None, device: torch.device) -> Any:
    raise RuntimeError("No model weights could be loaded")


def choose_loader(model_file: str, pt_path: str | None) -> ModelLoader:
    """First matching row of handlers.md §5.3 (ONNX, AOTInductor and pt2 archives excluded)."""
    if model_file:
        return load_eager
    if pt_path and pt_path.endswith(".pt"):
        return load_torchscript
    return no_weights


def maybe_compile(model: Any, yaml_config: dict[str, Any]) -> Any:
    """`torch.compile` only when the model YAML sets `pt2: {compile: {enable: true, ...}}`."""
    pt2 = yaml_config.get("pt2")
    compile_cfg = pt2.get("compile") if isinstance(pt2, dict) else None
    if not isinstance(compile_cfg, dict) or not compile_cfg.get("enable"):
        return model
    kwargs = {k: v for k, v in compile_cfg.items() if k != "enable"}
    if "backend" in kwargs and kwargs["backend"] not in PT2_BACKENDS:
        logger.warning("%s is not a supported backend", kwargs["backend"])
        return model
    try:
        return torch.compile(model, **kwargs)
    except Exception as exc:  # a failed compile must not fail the load; eager still works
        logger.warning("Compiling model failed, using the eager model: %s", exc)
        return model


def timed(method: F) -> F:
    """Record `ts_handler_<method>` (ms) when the model YAML has `handler: {profile: true}`."""

    @functools.wraps(method)
    def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
        if not self._profile_stages:
            return method(self, *args, **kwargs)
        start = time.perf_counter()
        result = method(self, *args, **kwargs)
        elapsed_ms = (time.perf_counter() - start) * 1000
        if self.context is not None:
            self.context.metrics.add_time(f"ts_handler_{method.__name__}", elapsed_ms, None, "ms")
        return result

    return wrapper  # type: ignore[return-value]


# --- the handler ---------------------------------------------------------------------------


class BaseHandler:
    """Generic handler: subclass and override `preprocess`/`inference`/`postprocess`.

    One instance per worker process: `initialize` runs once at load, `handle` once per batch.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.mapping: dict[str, str] | None = None
        self.device: torch.device | None = None
        self.initialized = False
        self.context: Context | None = None
        self.model_pt_path: str | None = None
        self.manifest: dict[str, Any] | None = None
        self.map_location: str | None = None
        self.explain = False
        self.target = 0
        self.profiler_args: dict[str, Any] = {}
        self.model_yaml_config: dict[str, Any] = {}

    @property
    def _profile_stages(self) -> bool:
        handler_cfg = self.model_yaml_config.get("handler")
        return isinstance(handler_cfg, dict) and bool(handler_cfg.get("profile"))

    def initialize(self, context: Context) -> None:
        """Called once in the worker process at load time: pick the device, load the model."""
        properties = context.system_properties
        model_dir = properties["model_dir"]
        self.context = context
        self.manifest = context.manifest
        self.model_yaml_config = context.model_yaml_config or {}
        self.device, self.map_location = select_device(properties.get("gpu_id"))
        model_section = (self.manifest or {}).get("model") or {}
        serialized = model_section.get("serializedFile")
        self.model_pt_path = os.path.join(model_dir, serialized) if serialized else None
        model_file = model_section.get("modelFile") or ""
        loader = choose_loader(model_file, self.model_pt_path)
        self.model = loader(model_dir, model_file, self.model_pt_path, self.device)
        self.model = maybe_compile(self.model, self.model_yaml_config)
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    @timed
    def preprocess(self, data: Any) -> Any:
        return torch.as_tensor(data, device=self.device)

    @timed
    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    @timed
    def postprocess(self, data: Any) -> Any:
        return data.tolist()

    def handle(self, data: list[dict[str, Any]], context: Context) -> Any:
        """Entry point for every batch; describe/explain are chosen by request 0's headers."""
        self.context = context
        start = time.perf_counter()
        if self._header_is_true("describe"):
            output = [self.describe_handle()]
        else:
            preprocessed = self.preprocess(data)
            if self._header_is_true("explain"):
                output = self.explain_handle(preprocessed, data)
            else:
                output = self.postprocess(self.inference(preprocessed))
        elapsed_ms = round((time.perf_counter() - start) * 1000, 2)
        context.metrics.add_time("HandlerTime", elapsed_ms, None, "ms")
        return output

    def _header_is_true(self, name: str) -> bool:
        if self.context is None or not self.context.request_processor:
            return False
        return bool(self.context.get_request_header(0, name) == "True")

    def describe_handle(self) -> Any:
        """Body of a customized describe request; None renders as `null`."""
        return None

    def explain_handle(self, data_preprocess: Any, raw_data: list[Any]) -> Any:
        row = raw_data[0]
        inputs, target = None, 0
        if isinstance(row, dict):
            inputs = row.get("data") or row.get("body")
            target = row.get("target") or 0
        return self.get_insights(data_preprocess, inputs, target)

    def get_insights(self, tensor_data: Any, raw_data: Any, target: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not support explanations")

    def get_device(self) -> torch.device | None:
        return self.device
