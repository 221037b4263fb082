"""The notebook API: load a model once, count photos, look at the result.

    import rookery
    model = rookery.load("models:/sealions@champion")   # or a .pt/.onnx path, or runs:/<run id>/model
    result = model.count("photo.jpg")                    # str | Path | numpy array (RGB) | PIL image
    result.counts, result.intervals, result.points       # rookery's own types
    result.to_pandas(); result.to_supervision(); result.plot()

Arrays are taken as RGB (the convention of PIL, matplotlib and most notebooks), H x W x 3 uint8; the counting
engine itself works in OpenCV's BGR and the conversion happens here, once. `import rookery` stays light: this
module (and with it the inference stack) is imported on the first `rookery.load`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rookery.errors import InputError, MissingExtraError
from rookery.types import Boxes, CountIntervals, Points, Prediction

if TYPE_CHECKING:
    from rookery.inference.loading import ModelInfo
    from rookery.inference.predictor import Predictor

PhotoLike = str | Path | np.ndarray | Any  # Any: a PIL.Image.Image (PIL is imported only when one is given)


@dataclass(frozen=True)
class CountResult:
    """One photo counted: its Prediction (boxes, counts, intervals) and the photo itself, for plotting."""

    prediction: Prediction
    # H x W x 3 uint8 in OpenCV's BGR, as the engine counted it: kept in the engine's order so that a photo read
    # from a file is neither converted for counting nor for drawing (plot shows it as RGB).
    image_bgr: np.ndarray

    @property
    def counts(self) -> dict[str, int]:
        """Objects per class, every class of the model (zeros included), in class order."""
        return self.prediction.counts

    @property
    def total(self) -> int:
        return self.prediction.total

    @property
    def intervals(self) -> CountIntervals:
        """Each class's count interval (90 % by default; `intervals.calibrated` says whether it was fitted)."""
        assert self.prediction.intervals is not None  # always computed by Model.count
        return self.prediction.intervals

    @property
    def boxes(self) -> Boxes:
        return self.prediction.boxes

    @property
    def points(self) -> Points:
        """One point per object (its box centre, photo pixels; (0, 0) is the centre of the top-left pixel)."""
        return Points(self.boxes.centers(), self.boxes.cls)

    def to_pandas(self) -> Any:
        """A DataFrame with one row per object: class, score, x, y (centre) and the box x1, y1, x2, y2."""
        try:
            import pandas as pd
        except ImportError as e:
            raise MissingExtraError("pandas (for to_pandas)", "notebook") from e
        rows = self.prediction.detections()
        frame = pd.DataFrame(rows, columns=["class_name", "class_id", "score", "x1", "y1", "x2", "y2"])
        frame.insert(3, "x", (frame["x1"] + frame["x2"]) / 2)
        frame.insert(4, "y", (frame["y1"] + frame["y2"]) / 2)
        return frame.rename(columns={"class_name": "class"})

    def to_supervision(self) -> Any:
        """The boxes as `supervision.Detections` (xyxy, confidence, class_id, data["class_name"]), for its
        annotators and trackers."""
        try:
            import supervision as sv
        except ImportError as e:
            raise MissingExtraError("supervision (for to_supervision)", "notebook") from e
        boxes = self.boxes
        names = np.array([self.prediction.class_names[c] for c in boxes.cls], dtype=object)
        return sv.Detections(
            xyxy=boxes.xyxy.astype(np.float32),
            confidence=None if boxes.score is None else boxes.score.astype(np.float32),
            class_id=boxes.cls.astype(int),
            data={"class_name": names},
        )

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """The photo with its boxes and a legend of counts, drawn on a matplotlib Axes (a new figure without one);
        returns the Axes."""
        import matplotlib.pyplot as plt

        from rookery.inference.render import render

        drawn = render(self.image_bgr, self.boxes, self.prediction.class_names, title=title or self.prediction.image)
        if ax is None:
            height, width = drawn.shape[:2]
            _, ax = plt.subplots(figsize=(10, 10 * height / max(width, 1)))
        ax.imshow(drawn[..., ::-1])
        ax.set_axis_off()
        return ax

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"CountResult({self.prediction.image!r}: {parts}; total={self.total})"


class Model:
    """A loaded model: `count` one photo at a time (tiles of a photo go through the network in batches)."""

    def __init__(self, predictor: Predictor, info: ModelInfo) -> None:
        self.predictor = predictor
        self.info = info

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.predictor.class_names

    def count(self, photo: PhotoLike, **options: Any) -> CountResult:
        """Count the objects on one photo of any size. `options` override the model's for this call: tile,
        overlap, conf (one threshold for every class, replacing a calibration's own), iou, batch, merge."""
        bgr, name = _as_bgr(photo)
        boxes = self.predictor.predict(bgr, **options)
        height, width = bgr.shape[:2]
        prediction = self.predictor.prediction(
            name, boxes, conf_overridden="conf" in options, width=width, height=height, model=self.info.ref
        )
        return CountResult(prediction, bgr)

    def __repr__(self) -> str:
        return f"Model({self.info.label}: {', '.join(self.class_names)}; {self.predictor.backend_name})"


def load(uri: str, backend: str = "auto", device: str = "auto", **options: Any) -> Model:
    """The model behind `uri` (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .pt/.onnx
    file), loaded once. `options` set defaults for every count (tile, overlap, conf, iou, batch, merge)."""
    from rookery.packaging.models import load_predictor

    predictor, info = load_predictor(str(uri), backend=backend, device=device, **options)
    return Model(predictor, info)


def _as_bgr(photo: PhotoLike) -> tuple[np.ndarray, str]:
    """(H x W x 3 uint8 BGR, a name) from a path (read as BGR), an RGB array or a PIL image (converted once)."""
    from rookery.imaging import read_image

    if isinstance(photo, str | Path):
        path = Path(photo)
        return read_image(path), path.name
    if isinstance(photo, np.ndarray):
        array = photo
        name = "array"
    elif hasattr(photo, "convert") and hasattr(photo, "size"):  # a PIL image (any mode)
        array = np.asarray(photo.convert("RGB"))
        name = str(getattr(photo, "filename", "") or "image")
    else:
        raise InputError(f"cannot count a {type(photo).__name__}: give a path, an RGB numpy array or a PIL image")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise InputError(f"an array photo must be H x W x 3 uint8 RGB, got shape {array.shape} and dtype {array.dtype}")
    return np.ascontiguousarray(array[..., 2::-1]), name  # the first three channels, reversed: RGB(A) -> BGR
