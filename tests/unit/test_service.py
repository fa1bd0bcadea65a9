"""Worker-side handler contract: loading (handlers.md §1, workers-batching.md §3) and batches (§2-3)."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from servekit.protocol import InputParam, LoadModel, WorkerRequest
from servekit.worker.context import Context
from servekit.worker.metrics import MetricTypes
from servekit.worker.service import ModelLoadError, Service, load_failure

ECHO_HANDLER = """
calls = []

def handle(data, context):
    calls.append(data)
    if data is None:
        return None
    return [{"row": {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in row.items()},
             "types": {k: type(v).__name__ for k, v in row.items()}} for row in data]

def headers(data, context):
    if data is None:
        return None
    return [context.get_all_request_header(i) for i in range(len(data))]
"""

# The request body selects the behaviour, so one loaded service covers every mapping.
BEHAVIOUR_HANDLER = """
import torch
from servekit.utils import PredictionException

def handle(data, context):
    if data is None:
        return None
    cmd = data[0]["body"]
    if cmd == b"memory": raise MemoryError()
    if cmd == b"prediction": raise PredictionException("teapot here", 418)
    if cmd == b"cuda": raise RuntimeError("CUDA error: device-side assert triggered")
    if cmd == b"other": raise ValueError("secret payload")
    if cmd == b"notlist": return "just a string"
    if cmd == b"short": return []
    if cmd == b"unserializable": return [object()]
    if cmd == b"tensor": return [torch.tensor([1.0, 2.0])]
    if cmd == b"dict": return [{"b": 0.4664836823940277, "a": [1, "\\u00e9"]}]
    if cmd == b"mixed": return [b"raw", bytearray(b"ba"), "text"][: len(data)]
    if cmd == b"status":
        context.set_response_status(201, "Created", 0)
        context.set_response_content_type(0, "application/json")
        context.set_response_header(0, "X-Custom", "yes")
        return ["{}"]
    return [None] * len(data)
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., Path]:
    """Build a model directory; modules imported from it are forgotten after the test."""
    path_before = list(sys.path)

    def make(files: dict[str, str | bytes], manifest: dict[str, Any] | None = None) -> Path:
        for name, content in files.items():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content))
        if manifest is not None:
            (tmp_path / "MAR-INF").mkdir(exist_ok=True)
            (tmp_path / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
        return tmp_path

    yield make
    sys.path[:] = path_before
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def load(path: Path, handler: str, **kwargs: Any) -> Service:
    return Service.load(LoadModel("m", str(path), handler, **kwargs))


def request(*params: tuple[str, str | None, bytes], headers: dict[str, str] | None = None,
            rid: str = "r0") -> WorkerRequest:
    return WorkerRequest(rid, headers or {}, [InputParam(*p) for p in params])


def body(cmd: bytes, rid: str = "r0") -> WorkerRequest:
    return request(("body", None, cmd), rid=rid)


# --- loading ---------------------------------------------------------------------------------


def test_function_handler_is_initialised_with_none(model_dir):
    path = model_dir({"echo.py": ECHO_HANDLER}, {"model": {"modelName": "orig", "handler": "echo"}})
    service = load(path, "echo", batch_size=4)
    assert sys.modules["echo"].calls == [None]
    ctx = service.context
    assert isinstance(ctx, Context)
    assert ctx.model_name == "m" and ctx.manifest["model"]["modelName"] == "orig"
    assert ctx.system_properties == {
        "model_dir": str(path), "gpu_id": None, "batch_size": 4, "server_name": "MMS",
        "server_version": "0.12.0", "limit_max_image_pixels": True,
    }
    assert ctx.model_yaml_config == {} and ctx.request_ids is None
    with pytest.raises(AttributeError):
        ctx.system_properties = {}


def test_manifest_absent_gives_none(model_dir):
    assert load(model_dir({"echo.py": ECHO_HANDLER}), "echo").context.manifest is None


def test_class_handler(model_dir):
    path = model_dir({"cls_handler.py": """
        from servekit.handlers.base_handler import BaseHandler as Imported  # does not count

        class MyHandler:
            def initialize(self, context):
                self.model_dir = context.system_properties["model_dir"]
            def handle(self, data, context):
                return [self.model_dir for _ in data]
        """})
    service = load(path, "cls_handler")
    assert service.predict([body(b"x")]).predictions[0].body == str(path).encode()


def test_module_function_with_path_and_py_suffix(model_dir):
    path = model_dir({"echo.py": ECHO_HANDLER})
    service = load(path, "some/dir/echo.py:headers")
    result = service.predict([request(("body", "text/plain", b"hi"))])
    assert json.loads(result.predictions[0].body)["body"] == {"content-type": "text/plain"}


def test_ambiguous_module_is_rejected(model_dir):
    path = model_dir({"two.py": "class A:\n    pass\nclass B:\n    pass\n"})
    with pytest.raises(ModelLoadError) as info:
        load(path, "two")
    assert isinstance(info.value.__cause__, ValueError)
    assert "Expected only one class in custom service code or a function entry point" in str(info.value)
    result = load_failure(info.value)
    assert result.code == 500
    assert result.message.startswith("Failed to load model m: ValueError: Expected only one class")


def test_class_without_handle_is_rejected(model_dir):
    path = model_dir({"nohandle.py": "class A:\n    def initialize(self, ctx):\n        pass\n"})
    with pytest.raises(ModelLoadError, match="Expect handle method in class"):
        load(path, "nohandle")


def test_load_failure_detail_has_user_traceback(model_dir):
    path = model_dir({"broken.py": """
        def _load_weights():
            raise RuntimeError("weights are corrupt")

        class Broken:
            def initialize(self, context):
                _load_weights()
            def handle(self, data, context):
                return data
        """})
    with pytest.raises(ModelLoadError) as info:
        load(path, "broken")
    result = load_failure(info.value)
    assert (result.code, result.message) == (500, "Failed to load model m: RuntimeError: weights are corrupt")
    lines = result.detail.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: weights are corrupt"
    assert "broken.py" in result.detail and "in _load_weights" in result.detail
    assert "importlib" not in result.detail and len(lines) <= 20


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (MemoryError(), 507, "System out of memory"),
        (RuntimeError("CUDA out of memory"), 507, "System out of memory"),
        (RuntimeError("plain"), 500, "Failed to load model x: RuntimeError: plain"),
        (ImportError("nope"), 500, "Failed to load model x: ImportError: nope"),
    ],
)
def test_load_failure_mapping(exc, code, message):
    result = load_failure(exc, "x")
    assert (result.code, result.message) == (code, message)
    assert result.detail.splitlines()[-1].startswith(type(exc).__name__)


def test_builtin_fallback_and_torchscript_model(model_dir):
    scripted = torch.jit.script(torch.nn.Linear(2, 1))
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    path = model_dir({"model.pt": buf.getvalue()}, {"model": {"serializedFile": "model.pt"}})
    service = load(path, "base_handler")
    handler = service.entry_point.__self__
    assert type(handler).__name__ == "BaseHandler" and handler.initialized
    assert isinstance(handler.model, torch.jit.ScriptModule)


def test_builtin_fallback_drops_function_name(model_dir):
    with pytest.raises(ModelLoadError) as info:
        load(model_dir({}), "base_handler:handle")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_import_error_inside_user_module_shows_in_detail(model_dir):
    path = model_dir({"needs_dep.py": "import not_installed_dependency_xyz\n"})
    with pytest.raises(ModelLoadError) as info:
        load(path, "needs_dep")
    detail = load_failure(info.value).detail
    assert "servekit.handlers.needs_dep" in detail  # TorchServe-compatible second error
    assert "not_installed_dependency_xyz" in detail  # ...plus the real cause


def test_base_handler_without_weights_fails(model_dir):
    with pytest.raises(ModelLoadError, match="No model weights could be loaded"):
        load(model_dir({}, {"model": {"serializedFile": "model.pth"}}), "base_handler")


def test_model_yaml_config(model_dir):
    files = {"echo.py": ECHO_HANDLER, "cfg.yaml": "minWorkers: 1\nhandler:\n  k: v\n", "empty.yaml": ""}
    path = model_dir(files, {"model": {"configFile": "cfg.yaml"}})
    assert load(path, "echo").context.model_yaml_config == {"minWorkers": 1, "handler": {"k": "v"}}
    path = model_dir(files, {"model": {"configFile": "empty.yaml"}})
    assert load(path, "echo").context.model_yaml_config == {}


def test_torch_threads(model_dir):
    before = torch.get_num_threads()
    try:
        load(model_dir({"echo.py": ECHO_HANDLER}), "echo", torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# --- batches ---------------------------------------------------------------------------------


@pytest.fixture
def echo(model_dir) -> Service:
    return load(model_dir({"echo.py": ECHO_HANDLER}), "echo")


@pytest.fixture
def behaviour(model_dir) -> Service:
    return load(model_dir({"behave.py": BEHAVIOUR_HANDLER}), "behave")


def test_input_decoding(echo):
    req = request(
        ("json", "application/json", b'{"a": [1, 2]}'),
        ("badjson", "application/json", b"{nope"),
        ("jsonish", "application/json-patch", b"[]"),
        ("text", "text/plain; charset=utf-8", "h\u00e9".encode()),
        ("csv", "text/csv", b"a,b"),
        ("badtext", "text/plain", b"\xff\xfe"),
        ("img", "image/jpeg", b"\x89PNG"),
        ("none", None, b"field"),
        ("dup", "text/plain", b"first"),
        ("dup", None, b"last"),
    )
    result = echo.predict([req])
    assert (result.code, result.message) == (200, "Prediction success")
    types = json.loads(result.predictions[0].body)["types"]
    assert types == {
        "json": "dict", "badjson": "bytes", "jsonish": "bytes", "text": "str", "csv": "str",
        "badtext": "bytes", "img": "bytes", "none": "bytes", "dup": "bytes",
    }
    row = json.loads(result.predictions[0].body)["row"]
    assert row["json"] == {"a": [1, 2]} and row["text"] == "h\u00e9" and row["dup"] == "last"


@pytest.mark.parametrize(("value", "decoded"), [("false", False), ("True", False), ("true", True)])
def test_decoding_switch(echo, monkeypatch, value, decoded):
    monkeypatch.setenv("TS_DECODE_INPUT_REQUEST", value)
    result = echo.predict([request(("body", "application/json", b"{}"))])
    assert json.loads(result.predictions[0].body)["types"]["body"] == ("dict" if decoded else "bytes")


def test_header_maps_and_request_ids(model_dir):
    service = load(model_dir({"echo.py": ECHO_HANDLER}), "echo:headers")
    reqs = [
        request(("data", "image/png", b"x"), ("file", None, b"y"),
                headers={"X-Trace": "1", "explain": "False"}, rid="a"),
        request(("body", "text/plain", b"z"), headers={"body": "real header wins"}, rid="b"),
    ]
    result = service.predict(reqs)
    first, second = (json.loads(p.body) for p in result.predictions)
    assert first == {"X-Trace": "1", "explain": "False", "data": {"content-type": "image/png"},
                     "file": {"content-type": ""}}
    assert second == {"body": "real header wins"}
    assert [p.request_id for p in result.predictions] == ["a", "b"]
    assert service.context.request_ids == {0: "a", 1: "b"}
    assert service.context.get_request_id(1) == "b"


@pytest.mark.parametrize(
    ("cmd", "code", "message"),
    [
        (b"memory", 507, "Out of resources"),
        (b"prediction", 418, "teapot here"),
        (b"cuda", 507, "Out of resources"),
        (b"other", 503, "Prediction failed"),
        (b"notlist", 503, "Invalid model predict output"),
        (b"short", 503, "number of batch response mismatched"),
        (b"unserializable", 503, "Unsupported model output data type."),
    ],
)
def test_batch_errors(behaviour, capsys, cmd, code, message):
    result = behaviour.predict([body(cmd)])
    assert (result.code, result.message, result.predictions) == (code, message, [])
    err = capsys.readouterr().err
    if cmd in (b"memory", b"prediction", b"cuda", b"other"):
        assert "Traceback" in err


def test_exception_traceback_goes_to_stderr_without_payload(behaviour, capsys):
    behaviour.predict([request(("body", None, b"other"), ("extra", None, b"TOPSECRET"))])
    captured = capsys.readouterr()
    assert "ValueError: secret payload" in captured.err
    assert "TOPSECRET" not in captured.err + captured.out


def test_tensor_output_is_torch_saved(behaviour):
    result = behaviour.predict([body(b"tensor")])
    assert torch.equal(torch.load(io.BytesIO(result.predictions[0].body)), torch.tensor([1.0, 2.0]))


def test_dict_output_is_indented_json(behaviour):
    result = behaviour.predict([body(b"dict")])
    expected = '{\n  "b": 0.4664836823940277,\n  "a": [\n    1,\n    "\\u00e9"\n  ]\n}'
    assert result.predictions[0].body == expected.encode()
    assert result.predictions[0].content_type is None  # never invented


def test_bytes_and_str_outputs(behaviour):
    result = behaviour.predict([body(b"mixed", "a"), body(b"x", "b"), body(b"x", "c")])
    assert [p.body for p in result.predictions] == [b"raw", b"ba", b"text"]


def test_none_output_is_json_null(behaviour):
    assert behaviour.predict([body(b"nothing")]).predictions[0].body == b"null"


def test_response_status_headers_and_content_type(behaviour):
    pred = behaviour.predict([body(b"status")]).predictions[0]
    assert (pred.status, pred.reason) == (201, "Created")
    assert pred.content_type == "application/json"
    assert pred.headers == {"X-Custom": "yes"}


def test_response_state_resets_between_batches(behaviour):
    behaviour.predict([body(b"status")])
    pred = behaviour.predict([body(b"dict")]).predictions[0]
    assert (pred.status, pred.reason, pred.content_type, pred.headers) == (200, "", None, {})


def test_prediction_time_metric(behaviour, capsys):
    behaviour.predict([body(b"dict", "rid-1")])
    metric = behaviour.context.metrics.get_metric("PredictionTime", MetricTypes.GAUGE)
    assert metric.value is not None and metric.value >= 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "PredictionTime" in l)
    assert line.startswith("[METRICS]PredictionTime.Milliseconds:")
    assert "|#ModelName:m,Level:Model|#type:GAUGE|#hostname:" in line
    assert line.endswith(",rid-1")


def test_base_handler_subclass_end_to_end(model_dir):
    scripted = torch.jit.script(torch.nn.Identity())
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    path = model_dir(
        {"ident.pt": buf.getvalue(), "doubler.py": """
            import torch
            from servekit.handlers.base_handler import BaseHandler

            class Doubler(BaseHandler):
                def preprocess(self, data):
                    return torch.tensor([row["body"] for row in data]) * 2
            """},
        {"model": {"serializedFile": "ident.pt"}},
    )
    service = load(path, "doubler")
    reqs = [request(("body", "application/json", b"[1.0, 2.5]"), rid=str(i)) for i in range(2)]
    result = service.predict(reqs)
    assert [json.loads(p.body) for p in result.predictions] == [[2.0, 5.0], [2.0, 5.0]]
    handler_time = service.context.metrics.get_metric("HandlerTime", MetricTypes.GAUGE)
    assert handler_time.value is not None


def test_describe_header_uses_describe_handle(model_dir):
    path = model_dir({"ident.pt": _scripted_identity()}, {"model": {"serializedFile": "ident.pt"}})
    service = load(path, "base_handler")
    result = service.predict([request(headers={"describe": "True"})])
    assert result.predictions[0].body == b"null"


def _scripted_identity() -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Identity()), buf)
    return buf.getvalue()


def test_model_dir_is_importable(model_dir):
    path = model_dir({"echo.py": ECHO_HANDLER})
    load(path, "echo")
    assert sys.path[0] == str(path) and os.path.isdir(sys.path[0])
