"""The Predictor: load a model once, then count objects on whole photos of any size.

    predictor = Predictor.from_path(Path("best.onnx"))
    boxes = predictor.predict(read_image(Path("photo.jpg")), mask=None)
    counts = predictor.counts(boxes)          # per class, in the order of predictor.class_names

Photos are cut into overlapping tiles (rookery.data.tiling.tile_grid), tiles go through the network in
batches, and detections are merged across seams (see merge.py). A photo no larger than a tile goes through
as it is, padded to the network's stride. Boxes are in photo pixels (centre of the top-left pixel = (0, 0)).
Nothing from Ultralytics, torch or ONNX Runtime leaves this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from rookery.errors import InputError
from rookery.inference.backends import Backend, BackendName, open_backend
from rookery.inference.calibration import CountCalibration
from rookery.inference.canonical import Canonical, scaled_groups
from rookery.inference.options import MergeMode, PredictOptions
from rookery.inference.pipeline import ImageInput, MaskInput, SkippedPhoto, check_fits, run_pipeline
from rookery.types import Boxes, CountIntervals, Prediction, Skipped


class Predictor:
    def __init__(
        self,
        backend: Backend,
        options: PredictOptions | None = None,
        gpu_engine: bool | None = None,
        calibration: CountCalibration | None = None,
        canonical: Canonical | None = None,
    ) -> None:
        """`gpu_engine`: run photos through the all-GPU engine (gpu.py: nvJPEG decode, fp16, GPU NMS and
        merge); None (the default) does so when the backend is PyTorch on a CUDA GPU.

        `calibration`: per-class score thresholds and the count interval's error model (calibration.py); its
        thresholds replace `options.conf` per class (a detection counts when its score reaches its class's).
        `canonical`: the ground resolution the model was trained at (canonical.py); each photo is then resized
        to it (tile and overlap are in the model's pixels), by its size or by `options.animal_px`."""
        self.backend = backend
        self.options = options or PredictOptions()
        self.gpu_engine = gpu_engine
        self.calibration = calibration
        self.canonical = canonical
        self._engine: Any = None

    def _gpu(self) -> Any:
        """The GpuEngine when this predictor uses one, built on first use; else None."""
        from rookery.inference.backends import CappedBackend, TorchBackend

        # A per-tile detection cap (the server's) wraps the backend; the GPU engine applies it in its own decoding.
        cap = self.backend if isinstance(self.backend, CappedBackend) else None
        backend = cap.inner if cap is not None else self.backend
        use = self.gpu_engine
        if use is None:
            use = isinstance(backend, TorchBackend) and backend.on_gpu
        if not use or not isinstance(backend, TorchBackend):
            return None
        if self._engine is None or self._engine.cap is not cap:
            from rookery.inference.gpu import GpuEngine

            self._engine = GpuEngine(backend, cap=cap)
        return self._engine

    @property
    def takes_bytes(self) -> bool:
        """True when encoded photo bytes are the best input: the GPU engine decodes JPEGs itself (nvJPEG)."""
        return self._gpu() is not None

    def _run(
        self, options: PredictOptions, items: Iterable[tuple[Any, MaskInput, str]], per_class: bool = True
    ) -> Iterator[tuple[int, Any]]:
        """Results in input order. `per_class`: apply the calibration's class thresholds (off when the caller
        set `conf` for this call: one threshold for all classes then)."""
        th = self.thresholds if per_class else None
        if th is not None:  # decode at the lowest class threshold; _filtered applies each class's own
            options = options.with_overrides(conf=float(min(th)))
        if self.canonical is None:
            yield from _filtered(self._run_one(options, items), th)
            return
        offset = 0  # photos of one size share options, so consecutive ones still share batches
        for opts, group in scaled_groups(self.canonical, options, items):
            for index, result in _filtered(self._run_one(opts, group), th):
                yield offset + index, result
            offset += len(group)

    def _run_one(
        self, options: PredictOptions, items: Iterable[tuple[Any, MaskInput, str]]
    ) -> Iterator[tuple[int, Any]]:
        engine = self._gpu()
        return engine.run(options, items) if engine is not None else run_pipeline(self.backend, options, items)

    @property
    def thresholds(self) -> np.ndarray | None:
        """Per-class score thresholds from the calibration, or None (one threshold: options.conf)."""
        if self.calibration is None or self.calibration.thresholds is None:
            return None
        return np.asarray(self.calibration.thresholds, dtype=np.float64)

    def count_intervals(self, counts: np.ndarray) -> np.ndarray:
        """(num_classes, 2) int64: the low and high end of each class's count interval (calibration.py; 90 %
        by default). A model without a calibration gets the uncalibrated default (about +-40 %)."""
        return self._interval_model.intervals(counts)

    def intervals(self, counts: np.ndarray, conf_overridden: bool = False) -> CountIntervals:
        """One photo's count intervals as rookery's own type. `conf_overridden`: the call set `conf`, replacing
        the calibration's per-class thresholds, so the interval is computed the same way but not calibrated."""
        calibration = self.calibration
        calibrated = (
            calibration is not None
            and calibration.photos > 0
            and calibration.thresholds is not None
            and not conf_overridden
        )
        bounds = self.count_intervals(np.asarray(counts, dtype=np.int64))
        classes = {n: (int(lo), int(hi)) for n, (lo, hi) in zip(self.class_names, bounds.tolist(), strict=True)}
        return CountIntervals(float(self.interval_level), calibrated, classes)

    def prediction(self, image: str, boxes: Boxes, conf_overridden: bool = False, **fields: Any) -> Prediction:
        """One photo's Prediction: `boxes` with their count intervals; `fields` are Prediction's others (width,
        height, image_sha256, model, timings_ms)."""
        intervals = self.intervals(self.counts(boxes), conf_overridden)
        return Prediction(image, self.class_names, boxes, intervals, **fields)

    @property
    def interval_level(self) -> float:
        """The level of count_intervals (0.9: 90 % intervals)."""
        return self._interval_model.level

    @property
    def _interval_model(self) -> CountCalibration:
        return self.calibration or CountCalibration.default(len(self.class_names))

    @classmethod
    def from_path(
        cls,
        weights: Path | str,
        backend: BackendName = "auto",
        device: str = "auto",
        tile: int = 640,
        overlap: int = 64,
        conf: float = 0.25,
        iou: float = 0.5,
        batch: int = 8,
        merge: MergeMode = "nms",
        imgsz: int | None = None,
    ) -> Predictor:
        """Load a .pt (Ultralytics checkpoint) or .onnx (its Ultralytics export) once.

        backend "auto" runs PyTorch on a CUDA GPU when there is one and the .pt is at hand, else ONNX
        Runtime on the CPU when an .onnx is (the file given or one of the same name beside it), else PyTorch
        on the CPU. Bad options are checked before the model is loaded.
        """
        options = PredictOptions(tile=tile, overlap=overlap, conf=conf, iou=iou, batch=batch, merge=merge, imgsz=imgsz)
        return cls(open_backend(Path(weights), backend, device), options)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.backend.class_names

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def device(self) -> str:
        return self.backend.device

    def counts(self, boxes: Boxes) -> np.ndarray:
        """Detections per class, (num_classes,) int64, in the order of `class_names`."""
        return boxes.counts(len(self.class_names))

    def predict(self, image_bgr: np.ndarray, mask: np.ndarray | None = None, **overrides: Any) -> Boxes:
        """Detections on one (H, W, 3) uint8 BGR photo of any size.

        `mask` (H, W): 255 = count here, 0 = ignore; detections centred in the ignore region are dropped
        and tiles wholly inside it are not run. `overrides` replace options for this call (tile, overlap,
        conf, iou, batch, merge). A bad photo or mask raises an InputError.
        """
        options = self.options.with_overrides(**overrides)
        for _, result in self._run(options, [(image_bgr, mask, "the image")], "conf" not in overrides):
            if isinstance(result, SkippedPhoto):
                raise result.error
            return cast(Boxes, result)
        raise AssertionError("the pipeline returned no result for the photo")  # not reachable

    def predict_many(
        self,
        images: Iterable[ImageInput],
        masks: Iterable[MaskInput] | None = None,
        names: Sequence[str] | None = None,
        **overrides: Any,
    ) -> list[Boxes | Skipped]:
        """Detections for each photo (an array, or a path read while the previous batch runs), in order.

        Tiles of consecutive photos share batches. A photo that cannot be read or is not a 3-channel image
        gives a Skipped with the reason; the others are processed.
        """
        return [r for _, r in self.iter_predict(images, masks, names, **overrides)]

    def iter_predict(
        self,
        images: Iterable[ImageInput],
        masks: Iterable[MaskInput] | None = None,
        names: Sequence[str] | None = None,
        **overrides: Any,
    ) -> Iterator[tuple[int, Boxes | Skipped]]:
        """Like predict_many, but streams (index, result) as each photo is done (memory stays bounded).

        Options are checked at once; photos are read, tiled and run as the stream is consumed.
        """
        options = self.options.with_overrides(**overrides)
        if isinstance(images, Sequence) and isinstance(masks, Sequence) and len(images) != len(masks):
            raise InputError(f"{len(images)} images but {len(masks)} masks were given; give one mask per image")
        check_fits(self.backend, options)
        return self._stream(options, _pair(images, masks, names), "conf" not in overrides)

    def _stream(
        self, options: PredictOptions, items: Iterator[tuple[ImageInput, MaskInput, str]], per_class: bool
    ) -> Iterator[tuple[int, Boxes | Skipped]]:
        for index, result in self._run(options, items, per_class):
            yield index, result.skipped if isinstance(result, SkippedPhoto) else result


def _filtered(results: Iterator[tuple[int, Any]], thresholds: np.ndarray | None) -> Iterator[tuple[int, Any]]:
    """Keep each photo's detections that reach their class's threshold."""
    for index, result in results:
        if thresholds is not None and isinstance(result, Boxes) and len(result):
            assert result.score is not None
            result = result.select(result.score >= thresholds[result.cls])
        yield index, result


def _pair(
    images: Iterable[ImageInput], masks: Iterable[MaskInput] | None, names: Sequence[str] | None
) -> Iterator[tuple[ImageInput, MaskInput, str]]:
    """(image, mask, name) for each photo; runs in the tiling thread, so reading a path overlaps inference."""
    mask_iter = iter(masks) if masks is not None else None
    for i, image in enumerate(images):
        mask = None
        if mask_iter is not None:
            mask = next(mask_iter, _MISSING)
            if mask is _MISSING:
                raise InputError(f"only {i} masks were given for more images; give one mask per image")
        yield image, mask, _name(image, i, names)  # type: ignore[misc]
    if mask_iter is not None and next(mask_iter, _MISSING) is not _MISSING:
        raise InputError("more masks than images were given; give one mask per image")


_MISSING = object()


def _name(image: ImageInput, index: int, names: Sequence[str] | None) -> str:
    if names is not None and index < len(names):
        return names[index]
    if isinstance(image, str | Path):
        return Path(image).name
    return f"image {index}"
