"""Test handler: reports what it saw, optionally sleeps, fails on request (module-level `handle`)."""

import json
import os
import time

from servekit.utils import PredictionException


def _text(row):
    value = row.get("data") or row.get("body")
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else json.dumps(value)


def handle(data, context):
    if data is None:  # the load-time initialisation call
        return None
    texts = [_text(row) for row in data]
    if "boom" in texts:
        raise ValueError("the handler blew up")
    if "teapot" in texts:
        raise PredictionException("I am a teapot", 418)
    for idx, text in enumerate(texts):
        if text.startswith("sleep:"):
            time.sleep(float(text.split(":", 1)[1]))
    return [{"input": t, "batch": len(data), "pid": os.getpid(),
             "request_id": context.get_request_id(i)} for i, t in enumerate(texts)]
