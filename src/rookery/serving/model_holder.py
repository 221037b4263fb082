"""The model of one server process: loaded once, warmed, used one inference at a time, swapped without downtime.

    holder = ModelHolder("models:/rookery@champion", settings)
    holder.start()                   # loads in the background: the server answers /health at once
    model = holder.current           # None until loaded and warmed; a request keeps this one object throughout
    boxes = model.predict(image)

When the URI names an alias, a background thread asks the registry every `registry_poll_seconds` which version
holds it. When the alias moved, the new version is downloaded, loaded and warmed beside the old one while the
old one keeps answering; then `current` is replaced by one reference assignment (atomic in Python), so a request
either gets the old model or the new one, never waits for a load, and never sees a half-loaded model. A request
already running on the old model finishes on it; the old model is freed when the last such request ends. A new
version that fails to load is logged and counted (rookery_errors_total{kind="model_load"}) and the old one keeps
serving; the next poll tries again. `check()` (POST /api/v1/model/reload) runs the same check at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from rookery.config import Settings
from rookery.errors import RookeryError
from rookery.inference.backends import CappedBackend
from rookery.serving.redact import redact

if TYPE_CHECKING:
    from rookery.inference.loading import ModelInfo
    from rookery.inference.predictor import Predictor
    from rookery.serving.metrics import Metrics
    from rookery.types import Boxes

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_KEY_METRIC_PREFIXES = ("best/", "heldout/", "eval/")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded, warmed model. `predict` runs one inference at a time.

    Why a lock and not a queue thread: ONNX Runtime (and PyTorch) already spread one call over every core, so
    two photos at once would only split the same cores and double the memory of activations; a whole photo
    already fills batches of tiles, so batching requests together gains little. A lock keeps that to one call
    at a time while decoding, drawing and storing (outside the lock) overlap with the next request's inference,
    and the waiting requests queue in the server's thread pool in arrival order. The lock belongs to the model:
    a new version warming up beside it never blocks requests on the old one.
    """

    predictor: Predictor
    info: ModelInfo
    run_metrics: dict[str, float]
    loaded_at: datetime
    max_per_photo: int = 0  # detections kept per photo (the best scoring); 0 = no cap
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.predictor.class_names

    @property
    def label(self) -> str:
        return self.info.label

    def card(self) -> dict[str, Any]:
        """The model card: what it was trained on, its classes, validation figures and intended use (from
        rookery_model.json; a model logged before cards existed says so)."""
        card = dict(self.info.meta.get("card") or {})
        return {
            "trained_on": card.get("trained_on") or "not recorded (this model was logged before model cards)",
            "classes": list(self.class_names),
            "training_objects": card.get("training_objects") or {},
            "recipe": card.get("recipe") or self.info.meta.get("family") or "yolo",
            "validation": dict(self.run_metrics),  # already the key figures (_KEY_METRIC_PREFIXES)
            "intended_use": card.get("intended_use") or "not recorded",
        }

    def empty_result_note(self) -> str:
        """What a photo with nothing found may mean, with what the model knows (the answer's `note`)."""
        card = self.card()
        return (
            "Nothing was found. The photo may hold none of " + ", ".join(self.class_names) + "; or its animals "
            "may look unlike the training photos (another ground resolution, so another size in pixels, another "
            f"camera or habitat). This model was trained on {card['trained_on']}. Intended use: "
            f"{card['intended_use']}"
        )

    def predict(self, image_bgr: np.ndarray, **overrides: Any) -> Boxes:
        return self.predict_capped(image_bgr, **overrides)[0]

    def predict_capped(self, image_bgr: np.ndarray, **overrides: Any) -> tuple[Boxes, str | None]:
        """The detections within the caps, and a sentence saying which cap was hit (None when none was)."""
        backend = getattr(self.predictor, "backend", None)
        capped = backend if isinstance(backend, CappedBackend) else None
        with self._lock:
            if capped is not None:
                capped.hits = 0
                capped.conf = self._conf_in_force(overrides)
            boxes = self.predictor.predict(image_bgr, **overrides)
            tiles_cut = capped.hits if capped is not None else 0
        notes = []
        if tiles_cut:
            notes.append(
                f"{tiles_cut} tile(s) had more than {capped.per_tile if capped else 0} candidate detections and kept "
                "the best scoring (ROOKERY_MAX_DETECTIONS_PER_TILE)"
            )
        if self.max_per_photo and len(boxes) > self.max_per_photo:
            assert boxes.score is not None
            keep = np.sort(np.argsort(-boxes.score, kind="stable")[: self.max_per_photo])
            notes.append(
                f"{len(boxes)} detections were found and the {self.max_per_photo} best scoring kept "
                "(ROOKERY_MAX_DETECTIONS_PER_PHOTO)"
            )
            boxes = boxes.select(keep)
        return boxes, ("; ".join(notes) + "; raise conf to count fewer, weaker detections") if notes else None

    def _conf_in_force(self, overrides: dict[str, Any]) -> float:
        if overrides.get("conf") is not None:
            return float(overrides["conf"])
        thresholds = getattr(self.predictor, "thresholds", None)
        if thresholds is not None and len(thresholds):
            return float(min(thresholds))
        return float(self.predictor.options.conf)

    def check_options(self, **overrides: Any) -> None:
        """Validate per-request options (a ConfigError naming the bad one) before any photo is decoded."""
        self.predictor.options.with_overrides(**overrides)

    def warm(self) -> None:
        """One inference on a blank tile, so the first request does not pay for lazy allocations."""
        side = min(self.predictor.options.tile, 1024)
        self.predict(np.zeros((side, side, 3), np.uint8))


def parse_alias(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a `models:/NAME@ALIAS` URI, else None."""
    m = _ALIAS_URI.match(uri.strip())
    return (m["name"], m["alias"]) if m else None


class ModelHolder:
    """Holds the current model of this process and follows the registry alias it was given, if any."""

    def __init__(self, uri: str, settings: Settings, metrics: Metrics | None = None, **load_options: Any) -> None:
        self.uri = uri.strip()
        self.settings = settings
        self.metrics = metrics
        self.load_options = load_options  # backend, device, PredictOptions fields
        self.alias = parse_alias(self.uri)
        self.last_error: str | None = None
        self._current: LoadedModel | None = None
        self._check_lock = threading.Lock()  # one check (poll or reload) at a time: never two loads at once
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._first_attempt = threading.Event()  # set when the first load has succeeded or failed
        self._thread: threading.Thread | None = None

    # -- state

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def following_alias(self) -> bool:
        return self.alias is not None

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    def wait_first_load(self, timeout: float) -> LoadedModel | None:
        """The model, waiting at most `timeout` while this process's first load is still under way (a server
        with several workers starts them one by one: a request may reach one that is still loading). Returns at
        once when the first load already failed; None when there is no model."""
        if self._current is None and self._thread is not None:
            self._first_attempt.wait(timeout)
        return self._current

    # -- lifecycle

    def start(self) -> None:
        """Load (and then follow the alias) in a background thread; returns at once. Calling it twice is harmless."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rookery-model", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except RookeryError as e:
                log.error("model %s: %s", self.uri, e)
            except Exception:  # a bug or an unexpected library failure: log it, keep serving the old model
                log.exception("model %s: unexpected failure while checking the registry", self.uri)
            self._first_attempt.set()
            if self._current is not None and not self.following_alias:
                return  # a fixed version or a file never changes
            self._stop.wait(self.settings.registry_poll_seconds)

    # -- check, load, swap

    def check(self) -> bool:
        """Load the model if none is loaded, or the alias's new version if it moved; True when a model was swapped
        in. Raises a RookeryError when the registry cannot be read or the new version cannot be loaded."""
        with self._check_lock:
            current = self._current
            if current is not None:
                if self.alias is None:
                    return False
                version = self._alias_version()
                if version == current.info.version:
                    return False
                log.info("model %s moved from version %s to %s: loading it", self.uri, current.info.version, version)
            try:
                new = self._load()
            except Exception as e:
                self.last_error = str(e) if isinstance(e, RookeryError) else f"{type(e).__name__}: {e}"
                if self.metrics is not None:
                    self.metrics.error("model_load")
                if current is not None:
                    log.error("model %s: the new version failed to load; %s keeps serving", self.uri, current.label)
                raise
            self._current = new  # the swap: one reference assignment
            self.last_error = None
            self._loaded.set()
            if self.metrics is not None:
                info = new.info
                self.metrics.set_model(info.name, info.version, info.alias, info.uri)
                if current is not None:
                    self.metrics.swaps.inc()
            log.info(
                "model %s ready: %s (%s on %s)", self.uri, new.label, new.predictor.backend_name, new.predictor.device
            )
            return True

    def _alias_version(self) -> str:
        from rookery.packaging.registry import alias_version

        assert self.alias is not None
        return alias_version(self.settings.tracking_uri, *self.alias)

    def _load(self) -> LoadedModel:
        from rookery.packaging.models import load_predictor

        started = time.perf_counter()
        predictor, info = load_predictor(self.uri, tracking_uri=self.settings.tracking_uri, **self.load_options)
        per_tile = self.settings.max_detections_per_tile
        backend = getattr(predictor, "backend", None)
        if per_tile > 0 and backend is not None:  # the GPU engine unwraps it and caps in its own decoding
            predictor.backend = CappedBackend(predictor.backend, per_tile)
        run_metrics = self._run_metrics(info.run_id)
        model = LoadedModel(predictor, info, run_metrics, datetime.now(UTC), self.settings.max_detections_per_photo)
        model.warm()
        log.info("loaded and warmed %s in %.1f s", info.label, time.perf_counter() - started)
        return model

    def _run_metrics(self, run_id: str | None) -> dict[str, float]:
        """The run's key metrics for GET /api/v1/model; empty when the run cannot be read (never fatal)."""
        from rookery.packaging.registry import run_metrics

        metrics = run_metrics(self.settings.tracking_uri, run_id)
        return {k: v for k, v in sorted(metrics.items()) if k.startswith(_KEY_METRIC_PREFIXES)}

    # -- description (GET /api/v1/model)

    def describe(self, model: LoadedModel) -> dict[str, Any]:
        info, options = model.info, model.predictor.options
        ui = self.settings.mlflow_ui_url.rstrip("/")
        link = None
        if ui and info.name and info.version:
            link = f"{ui}/#/models/{info.name}/versions/{info.version}"
        elif ui:
            link = ui
        return {
            "name": info.name,
            "version": info.version,
            "alias": info.alias,
            "uri": redact(info.uri),  # a file's name, never its folders on the server's disk
            "run_id": info.run_id,
            "label": info.label,
            "class_names": list(model.class_names),
            "metrics": model.run_metrics,
            "loaded_at": model.loaded_at,
            "mlflow_ui_url": link,
            "following_alias": self.following_alias,
            "backend": model.predictor.backend_name,
            "device": model.predictor.device,
            "tile": options.tile,
            "overlap": options.overlap,
            "imgsz": options.imgsz,
            "card": model.card(),
        }
