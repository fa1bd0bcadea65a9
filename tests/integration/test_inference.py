"""Inference against a real server: request mapping, responses, errors, worker failure."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from tests.integration.http_client import assert_error, call
from tests.integration.server import RunningServer, pid_alive, wait_until

NO_WORKER = ('Model "{}" has no worker to serve inference request. Please use scale workers API to add workers. '
             "If this is a sequence inference, please check if it is closed, or expired; or exceeds "
             "maxSequenceJobQueueSize")


def predict(server: RunningServer, text: str, model: str = "echo", **kw) -> object:  # type: ignore[no-untyped-def]
    return call("POST", server.url("inference", f"/predictions/{model}"), text.encode(), **kw)


def test_ping_and_common_headers(server: RunningServer) -> None:
    reply = call("GET", server.url("inference", "/ping"))
    assert reply.status == 200 and reply.json() == {"status": "Healthy"}
    assert reply.body.endswith(b"}\n") and b'  "status"' in reply.body  # 2-space pretty JSON + newline
    assert len(reply.headers["x-request-id"]) == 36
    assert reply.headers["cache-control"] == "no-cache; no-store, must-revalidate, private"
    assert reply.headers["pragma"] == "no-cache"


def test_raw_body_reaches_handler_and_request_id_matches(server: RunningServer) -> None:
    reply = predict(server, "hello")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["input"] == "hello" and body["batch"] == 1
    assert body["request_id"] == reply.headers["x-request-id"]
    assert "application/json" not in reply.headers.get("content-type", "")  # handler set none


def test_json_body_is_decoded_in_worker(server: RunningServer) -> None:
    payload = json.dumps({"a": [1, 2]}).encode()
    reply = call("POST", server.url("inference", "/predictions/echo"), payload,
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 200
    assert json.loads(reply.json()["input"]) == {"a": [1, 2]}


def test_multipart_form_field_named_data(server: RunningServer) -> None:
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"t.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nfrom-a-form\r\n--{boundary}--\r\n").encode()
    reply = call("POST", server.url("inference", "/predictions/echo"), body,
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert reply.status == 200, reply.body
    assert reply.json()["input"] == "from-a-form"


def test_unknown_model_and_version_404(server: RunningServer) -> None:
    assert_error(predict(server, "x", model="nope"), 404, "ModelNotFoundException", "Model not found: nope")
    reply = call("POST", server.url("inference", "/predictions/echo/9.9"), b"x")
    assert_error(reply, 404, "ModelVersionNotFoundException", "Model version: 9.9 does not exist for model: echo")
    assert_error(call("GET", server.url("inference", "/no/such/path")), 404, "ResourceNotFoundException")


def test_error_response_closes_connection(server: RunningServer) -> None:
    reply = predict(server, "x", model="nope")
    assert reply.headers["connection"].lower() == "close"


def test_handler_exception_is_503_and_worker_survives(server: RunningServer) -> None:
    pid_before = predict(server, "who").json()["pid"]
    assert_error(predict(server, "boom"), 503, "InternalServerException", "Prediction failed")
    assert_error(predict(server, "teapot"), 418, "InternalServerException", "I am a teapot")
    after = predict(server, "still-there")
    assert after.status == 200 and after.json()["pid"] == pid_before


def test_sigkill_mid_request_fails_fast_and_worker_restarts(server: RunningServer) -> None:
    pid = predict(server, "who").json()["pid"]
    result: dict[str, object] = {}

    def slow_request() -> None:
        result["reply"] = predict(server, "sleep:30")
        result["done"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)  # the request is now inside the handler
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert float(result["done"]) - killed_at < 1.0  # type: ignore[arg-type]
    reply = result["reply"]
    assert reply.status in (500, 507)  # type: ignore[attr-defined]
    assert reply.json()["message"] == "Worker died."  # type: ignore[attr-defined]
    # The slot restarts after TorchServe's 1 s back-off and serves again with a new process.
    assert wait_until(lambda: predict(server, "again").status == 200, timeout=15)
    assert predict(server, "again").json()["pid"] != pid
    assert not pid_alive(pid)


def test_response_timeout_kills_worker_with_500(server: RunningServer) -> None:
    pid = predict(server, "who").json()["pid"]
    started = time.monotonic()
    reply = predict(server, "sleep:60")  # default_response_timeout=5 in this server's config
    assert_error(reply, 500, "InternalServerException", "Worker died.")
    assert 4.5 < time.monotonic() - started < 15
    assert wait_until(lambda: not pid_alive(pid), timeout=5)
    assert wait_until(lambda: predict(server, "again").status == 200, timeout=15)


def test_model_without_workers_is_503(server: RunningServer) -> None:
    reply = call("POST", server.url("management", "/models?url=echo.mar&model_name=idle&initial_workers=0"),
                 headers=server.auth)
    assert reply.status == 200, reply.body
    assert reply.json()["status"] == ('Model "idle" Version: 1.0 registered with 0 initial workers. '
                                      "Use scale workers API to add workers for the model.")
    assert_error(predict(server, "x", model="idle"), 503, "ServiceUnavailableException", NO_WORKER.format("idle"))
    assert call("DELETE", server.url("management", "/models/idle"), headers=server.auth).status == 200


def test_request_too_large_is_413(server: RunningServer) -> None:
    reply = call("POST", server.url("inference", "/predictions/echo"), b"x" * (6553500 + 10))
    assert reply.status == 413
    assert predict(server, "fine").status == 200


def test_binary_body_sent_as_form_is_a_clear_400(server: RunningServer) -> None:
    reply = call("POST", server.url("inference", "/predictions/echo"), b"\xff\xd8\xff\xe0binary",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(reply, 400, "BadRequestException")
    assert predict(server, "fine").status == 200


def test_urlencoded_fields_become_inputs(server: RunningServer) -> None:
    reply = call("POST", server.url("inference", "/predictions/echo"), b"data=hello%20form&other=1",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200 and reply.json()["input"] == "hello form"


def test_handler_written_for_torchserve_runs_unmodified(server: RunningServer) -> None:
    from servekit.archiver import ModelArchiverConfig, generate_model_archive
    from tests.integration.archives import ASSETS

    generate_model_archive(ModelArchiverConfig(model_name="legacy", version="1.0", export_path=str(server.store),
                                               handler=str(ASSETS / "ts_style_handler.py"), force=True))
    reply = call("POST", server.url("management", "/models?url=legacy.mar&initial_workers=1"), headers=server.auth)
    assert reply.status == 200, reply.body
    ok = predict(server, "hi", model="legacy")
    assert ok.status == 200 and ok.json() == {"handler": "LegacyHandler", "model": "legacy"}
    assert_error(predict(server, "legal", model="legacy"), 451, "InternalServerException",
                 "Unavailable for legal reasons")
    assert call("DELETE", server.url("management", "/models/legacy"), headers=server.auth).status == 200
