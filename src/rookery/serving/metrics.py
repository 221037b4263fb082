"""Prometheus metrics of one app, correct with one server process or several (`rookery serve --workers N`).

One process: each app has its own CollectorRegistry, so tests (and several apps in one process) never share
counters, and /metrics shows exactly this app's numbers.

Several processes: uvicorn's workers are separate interpreters, and a scrape of /metrics reaches one of them, so
per-process numbers would jump between scrapes and undercount. prometheus_client's multiprocess mode fixes that:
when PROMETHEUS_MULTIPROC_DIR is set before the workers start (`multiprocess_dir`, used by `rookery serve`), every
process writes its values to memory-mapped files in that folder, and /metrics merges all of them
(MultiProcessCollector): counters and histograms are summed over workers, gauges combined as each one's
`multiprocess_mode` says. The metric names are the same in both modes; they are listed in docs/serving.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: a tiny photo is counted in milliseconds, a 5600x3700 survey photo on a CPU in seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def multiprocess_enabled() -> bool:
    """prometheus_client picks its value store from this variable when the first metric is made (per process)."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[Path | None]:
    """Around a server with `workers` processes: multiprocess mode on when there is more than one.

    Without PROMETHEUS_MULTIPROC_DIR, a new private folder is made and removed at the end. A folder the operator
    set is used and kept, but emptied of the previous run's value files first: prometheus_client requires a clean
    folder per run, or a restarted server would add the dead processes' counts to its own. One worker leaves the
    environment as it is (single-process mode, nothing written to disk).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not given:
        yield None
        return
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        try:
            yield folder
        finally:
            forget_dead_workers(folder)  # they have all stopped: none is loaded any more
        return
    folder = Path(tempfile.mkdtemp(prefix="rookery-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)  # the workers are spawned after this and inherit it
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def forget_dead_workers(folder: Path) -> None:
    """Drop the `live*` gauge files of worker processes that are gone, so a stopped or crashed worker no longer
    counts as having a model loaded (uvicorn restarts a dead worker under a new pid).

    prometheus_client leaves this to the server (`mark_process_dead`, meant for gunicorn's child_exit hook); uvicorn
    has no such hook, and an atexit handler never runs in its workers, so it is done at each scrape and when the
    server stops. Counters and histograms stay: the requests a worker answered before it stopped were answered.
    """
    from prometheus_client import multiprocess

    for file in folder.glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(folder))  # type: ignore[no-untyped-call]  # unannotated


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process under that pid: not ours to forget
    return True


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # Decided once, like prometheus_client's own value store: the folder the workers were started with.
        folder = os.environ.get(MULTIPROC_ENV)
        self.multiprocess_folder = Path(folder) if folder else None
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
        # Gauges across workers (ignored with one process): the model is "loaded" only when every live worker has
        # it (livemin), and a model version shows 1 while any live worker answers with it (livemax; during an
        # alias swap two versions may show 1 for a moment, which is true).
        self.model_info = Gauge(
            "rookery_model_info",
            "The model that answers (value 1).",
            ["name", "version", "alias", "uri"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_loaded = Gauge(
            "rookery_model_loaded",
            "1 once a model is loaded and warmed (in every worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
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
            # remove() forgets the series in this process only; the value file of multiprocess mode keeps its last
            # value, so it is set to 0 first (livemax then shows 0 once no worker serves that version).
            self.model_info.labels(*self._info_labels).set(0)
            self.model_info.remove(*self._info_labels)
        self.model_info.labels(*labels).set(1)
        self._info_labels = labels
        self.model_loaded.set(1)

    def render(self) -> bytes:
        if self.multiprocess_folder is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        forget_dead_workers(self.multiprocess_folder)
        # A registry per scrape, as prometheus_client documents: the collector reads every worker's files.
        merged = CollectorRegistry()
        # MultiProcessCollector's __init__ is unannotated
        multiprocess.MultiProcessCollector(merged, path=str(self.multiprocess_folder))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
