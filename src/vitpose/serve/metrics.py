"""The service's Prometheus metrics (`GET /metrics`), in a registry of each app's own.

vitpose_requests_total{path, method, status}   requests answered (path: the route's template, or "other")
vitpose_request_seconds{path}                   latency histogram, from the request's arrival to its last byte
vitpose_batch_size                              crops per network call (histogram)
vitpose_batch_seconds                           network time per call (histogram)
vitpose_crops_total                             person crops run by the network
vitpose_crops_per_second                        crops run per second over the last `window_s` seconds
vitpose_queue_depth                             requests admitted and not finished
vitpose_queue_size                              the most admitted at once (--queue-size)
vitpose_cancelled_total                         requests whose client went away before the answer
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
NETWORK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ServiceMetrics:
    """The metrics of one service; `batcher` gives the queue depth and reports each batch (`on_batch`)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, batcher: Any, *, window_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        self.window_s = window_s
        self.requests = Counter(
            "vitpose_requests",
            "Requests answered, by route, method and status.",
            ["path", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vitpose_request_seconds",
            "Request latency, arrival to last byte.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        limit = max(1, batcher.max_batch)
        sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if b < limit] + [limit]
        self.batch_size = Histogram(
            "vitpose_batch_size", "Person crops per network call.", buckets=sizes, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "vitpose_batch_seconds", "Network time per call.", buckets=NETWORK_BUCKETS, registry=self.registry
        )
        self.crops = Counter("vitpose_crops", "Person crops run by the network.", registry=self.registry)
        self.cancelled = Counter(
            "vitpose_cancelled", "Requests whose client went away before the answer.", registry=self.registry
        )
        Gauge("vitpose_queue_depth", "Requests admitted and not finished.", registry=self.registry).set_function(
            lambda: batcher.pending
        )
        Gauge("vitpose_queue_size", "Requests admitted at most (--queue-size).", registry=self.registry).set(
            batcher.queue_size
        )
        Gauge(
            "vitpose_crops_per_second", f"Crops run per second over the last {window_s:g} s.", registry=self.registry
        ).set_function(self.crops_per_second)
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        batcher.on_batch = self.batch

    def batch(self, crops: int, seconds: float) -> None:
        """One network call of `crops` crops that took `seconds` (the batcher's worker calls it)."""
        self.batch_size.observe(crops)
        self.batch_seconds.observe(seconds)
        self.crops.inc(crops)
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, crops))
            self._forget(now)

    def crops_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._forget(now)
            return sum(n for _, n in self._recent) / self.window_s

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def answered(self, path: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(path=path, method=method, status=str(status)).inc()
        self.latency.labels(path=path).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: counts every HTTP request by route template, method and status, and times it."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "other"  # unknown paths share one label (bounded cardinality)
            self.metrics.answered(path, scope.get("method", ""), status[0], time.perf_counter() - start)


__all__ = ["MetricsMiddleware", "ServiceMetrics"]
