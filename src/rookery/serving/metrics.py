"""Prometheus metrics of one app: its own CollectorRegistry, so tests (and several apps in one process) never share
counters, and /metrics shows exactly this app's numbers.

With `rookery serve --workers N` each worker process counts its own requests; scrape each worker or run one
worker per container (the usual deployment), as prometheus_client's multiprocess mode is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: a tiny photo is counted in milliseconds, a 5600x3700 survey photo on a CPU in seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rookery_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "rookery_http_request_duration_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "rookery_inference_duration_seconds", "Model time per photo.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.images = Counter("rookery_images", "Photos counted.", registry=r)
        self.objects = Counter("rookery_objects", "Objects counted, by class.", ["class_name"], registry=r)
        self.errors = Counter("rookery_errors", "Errors by kind.", ["kind"], registry=r)
        self.model_info = Gauge(
            "rookery_model_info", "The model that answers (value 1).", ["name", "version", "alias", "uri"], registry=r
        )
        self.model_loaded = Gauge("rookery_model_loaded", "1 once a model is loaded and warmed.", registry=r)
        self.swaps = Counter("rookery_model_swaps", "Model versions swapped in while serving.", registry=r)
        self._info_labels: tuple[str, str, str, str] | None = None

    def counted(self, class_names: Sequence[str], counts: Sequence[int], inference_s: float) -> None:
        self.images.inc()
        self.inference.observe(inference_s)
        for name, n in zip(class_names, counts, strict=True):
            if n:
                self.objects.labels(name).inc(int(n))

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def set_model(self, name: str | None, version: str | None, alias: str | None, uri: str) -> None:
        labels = (name or "", version or "", alias or "", uri)
        if self._info_labels is not None and self._info_labels != labels:
            self.model_info.remove(*self._info_labels)
        self.model_info.labels(*labels).set(1)
        self._info_labels = labels
        self.model_loaded.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
