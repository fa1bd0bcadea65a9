"""Management API against a real server: register, scale, describe, unregister, bad input."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import jpeg_bytes
from tests.integration.http_client import assert_error, call
from tests.integration.server import RunningServer, pid_alive, wait_until

DESCRIBE_KEYS = [
    "modelName", "modelVersion", "modelUrl", "runtime", "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay",
    "responseTimeout", "startupTimeout", "maxRetryTimeoutInSec", "clientTimeoutInMills", "parallelType",
    "parallelLevel", "deviceType", "continuousBatching", "useJobTicket", "useVenv", "stateful",
    "sequenceMaxIdleMSec", "sequenceTimeoutMSec", "maxNumSequence", "maxSequenceJobQueueSize", "loadedAtStartup",
    "workers", "jobQueueStatus",
]
WORKER_KEYS = ["id", "startTime", "status", "memoryUsage", "pid", "gpu", "gpuUsage"]


def mgmt(server: RunningServer, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
    return call(method, server.url("management", path), headers=server.auth, **kw)


def describe(server: RunningServer, name: str) -> dict:  # type: ignore[type-arg]
    reply = mgmt(server, "GET", f"/models/{name}")
    assert reply.status == 200, reply.body
    return reply.json()[0]  # type: ignore[no-any-return]


def test_management_requires_token(server: RunningServer) -> None:
    reply = call("GET", server.url("management", "/models"))
    assert_error(reply, 400, "InvalidKeyException",
                 "Token Authorization failed. Token either incorrect, expired, or not provided correctly")
    reply = call("GET", server.url("management", "/models"), headers={"Authorization": "Bearer wrongkey"})
    assert reply.status == 400


def test_register_scale_describe_predict_unregister(server: RunningServer, photo_jpeg: bytes) -> None:
    reply = mgmt(server, "POST", "/models?url=tiny.mar&initial_workers=1")
    assert reply.status == 200, reply.body
    assert reply.json() == {"status": 'Model "tiny" Version: 1.0 registered with 1 initial workers'}

    info = describe(server, "tiny")
    assert list(info) == DESCRIBE_KEYS
    assert [list(w) for w in info["workers"]] == [WORKER_KEYS]
    assert info["workers"][0]["status"] == "READY" and info["workers"][0]["pid"] > 0

    reply = mgmt(server, "PUT", "/models/tiny?min_worker=2&synchronous=true")
    assert reply.status == 200 and reply.json() == {"status": "Workers scaled to 2 for model: tiny"}
    workers = describe(server, "tiny")["workers"]
    pids = [w["pid"] for w in workers]
    assert len(workers) == 2 and all(p > 0 and pid_alive(p) for p in pids)
    assert len({w["id"] for w in workers}) == 2

    prediction = call("POST", server.url("inference", "/predictions/tiny"), photo_jpeg)
    assert prediction.status == 200, prediction.body
    top5 = prediction.json()
    assert len(top5) == 5 and abs(sum(top5.values()) - 1.0) < 1.0  # 5 of 10 class probabilities
    assert list(top5.values()) == sorted(top5.values(), reverse=True)
    assert predict_echo(server).status == 200  # the other model serves alongside

    reply = mgmt(server, "PUT", "/models/tiny?min_worker=1&synchronous=true")
    assert reply.status == 200
    remaining = describe(server, "tiny")["workers"]
    assert [w["pid"] for w in remaining] == pids[:1]  # the newest slot goes, the oldest stays
    assert wait_until(lambda: not pid_alive(pids[1]), timeout=10)

    reply = mgmt(server, "DELETE", "/models/tiny")
    assert reply.status == 200 and reply.json() == {"status": 'Model "tiny" unregistered'}
    assert wait_until(lambda: not pid_alive(pids[0]), timeout=10)
    assert_error(mgmt(server, "GET", "/models/tiny"), 404, "ModelNotFoundException", "Model not found: tiny")


def predict_echo(server: RunningServer):  # type: ignore[no-untyped-def]
    return call("POST", server.url("inference", "/predictions/echo"), b"ping")


def test_grayscale_image_classifies(server: RunningServer) -> None:
    from PIL import Image

    mgmt(server, "POST", "/models?url=tiny.mar&model_name=tinygray&initial_workers=1")
    gray = jpeg_bytes(Image.new("L", (64, 48), color=128))
    reply = call("POST", server.url("inference", "/predictions/tinygray"), gray)
    assert reply.status == 200, reply.body
    assert len(reply.json()) == 5
    assert mgmt(server, "DELETE", "/models/tinygray").status == 200


def test_list_models(server: RunningServer) -> None:
    reply = mgmt(server, "GET", "/models")
    assert reply.status == 200
    body = reply.json()
    assert {"modelName": "echo", "modelUrl": "echo.mar"} in body["models"]
    limited = mgmt(server, "GET", "/models?limit=1").json()
    assert limited["nextPageToken"] == "1" and len(limited["models"]) == 1


def test_bad_parameters(server: RunningServer) -> None:
    assert_error(mgmt(server, "POST", "/models"), 400, "BadRequestException", "Parameter url is required.")
    assert_error(mgmt(server, "PUT", "/models/echo?min_worker=3&max_worker=1"), 400, "BadRequestException",
                 "max_worker cannot be less than min_worker.")
    assert_error(mgmt(server, "POST", "/models?url=missing.mar"), 404, "ModelNotFoundException",
                 "Model not found at: missing.mar")
    assert_error(mgmt(server, "POST", "/models?url=../etc/passwd"), 404, "ModelNotFoundException",
                 "Relative path is not allowed in url: ../etc/passwd")
    assert_error(mgmt(server, "POST", "/models?url=echo.mar&runtime=java"), 400, "BadRequestException",
                 "Invalid RuntimeType value: java")
    assert_error(mgmt(server, "PATCH", "/models/echo"), 405, "MethodNotAllowedException")
    assert_error(mgmt(server, "POST", "/models?url=echo.mar"), 409, "ConflictStatusException",
                 "Model version 1.0 is already registered for model echo")


def test_corrupt_archives_are_refused_and_server_keeps_serving(server: RunningServer) -> None:
    before = set((server.cwd.parent / "tmp").glob("servekit-*/models/*"))
    for name in ("truncated.mar", "garbage.mar"):
        reply = mgmt(server, "POST", f"/models?url={name}&initial_workers=1")
        assert_error(reply, 400, "InvalidModelException")
        assert name in reply.json()["message"]
    assert set((server.cwd.parent / "tmp").glob("servekit-*/models/*")) == before  # nothing left behind
    assert predict_echo(server).status == 200


def test_failing_load_rolls_back_registration(server: RunningServer) -> None:
    reply = mgmt(server, "POST", "/models?url=echo.mar&model_name=broken&handler=no_such_handler&initial_workers=1")
    assert_error(reply, 500, "InternalServerException", "Failed to start workers for model broken version: 1.0")
    assert mgmt(server, "GET", "/models/broken").status == 404
    assert predict_echo(server).status == 200


def test_batching_groups_concurrent_requests(server: RunningServer) -> None:
    reply = mgmt(server, "POST", "/models?url=echo.mar&model_name=batched&initial_workers=1"
                                 "&batch_size=4&max_batch_delay=200")
    assert reply.status == 200, reply.body
    lone = call("POST", server.url("inference", "/predictions/batched"), b"alone")
    assert lone.json()["batch"] == 1
    # Occupy the worker, then queue four requests: they must leave together as one batch.
    with ThreadPoolExecutor(5) as pool:
        blocker = pool.submit(call, "POST", server.url("inference", "/predictions/batched"), b"sleep:1")
        time.sleep(0.3)
        queued = [pool.submit(call, "POST", server.url("inference", "/predictions/batched"), f"q{i}".encode())
                  for i in range(4)]
        results = [f.result().json() for f in queued]
        assert blocker.result().status == 200
    assert all(r["batch"] == 4 for r in results), results
    assert sorted(r["input"] for r in results) == ["q0", "q1", "q2", "q3"]
    assert mgmt(server, "DELETE", "/models/batched").status == 200


def test_set_default_and_versions(server: RunningServer) -> None:
    assert mgmt(server, "POST", "/models?url=echo.mar&model_name=ver&initial_workers=0").status == 200
    reply = mgmt(server, "PUT", "/models/ver/1.0/set-default")
    assert reply.json() == {"status": 'Default version successfully updated for model "ver" to "1.0"'}
    assert_error(mgmt(server, "PUT", "/models/ver/2.0/set-default"), 404, "ModelVersionNotFoundException",
                 "Model version 2.0 does not exist for model ver")
    assert len(mgmt(server, "GET", "/models/ver/all").json()) == 1
    assert mgmt(server, "DELETE", "/models/ver/1.0").status == 200
