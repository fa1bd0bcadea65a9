"""Frontend metrics exposed in Prometheus format on the metrics listener."""

from __future__ import annotations

import socket

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

LABELS = ("model_name", "model_version", "hostname")


class FrontendMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.hostname = socket.gethostname()
        unit = "Torchserve prometheus counter metric with unit: "
        self.requests = Counter("ts_inference_requests", unit + "Count", LABELS, registry=self.registry)
        self.latency = Counter("ts_inference_latency_microseconds", unit + "Microseconds", LABELS,
                               registry=self.registry)
        self.queue_latency = Counter("ts_queue_latency_microseconds", unit + "Microseconds", LABELS,
                                     registry=self.registry)

    def labels(self, model: str, version: str | None) -> tuple[str, str, str]:
        return model, version or "default", self.hostname

    def request_admitted(self, labels: tuple[str, str, str]) -> None:
        self.requests.labels(*labels).inc()

    def request_done(self, labels: tuple[str, str, str], total_s: float, queued_s: float) -> None:
        self.latency.labels(*labels).inc(total_s * 1e6)
        self.queue_latency.labels(*labels).inc(queued_s * 1e6)

    def exposition(self, names: list[str]) -> bytes:
        registry = self.registry.restricted_registry(names) if names else self.registry
        return generate_latest(registry)


def metrics_app(metrics: FrontendMetrics, middlewares: list) -> web.Application:  # type: ignore[type-arg]
    async def handle(request: web.Request) -> web.Response:
        body = metrics.exposition(request.query.getall("name[]", []))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=middlewares)
    app.router.add_route("*", "/metrics", handle)
    app.router.add_route("*", "/metrics/{tail:.*}", handle)
    return app
