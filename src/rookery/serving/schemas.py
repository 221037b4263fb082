"""The REST API's request and response bodies (the contract in the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from rookery.serving.redact import redact

if TYPE_CHECKING:
    from rookery.serving.store import StoredPrediction


class ErrorBody(BaseModel):
    detail: str = Field(description="One sentence saying what went wrong.", examples=["photo.jpg is empty"])


class ModelRef(BaseModel):
    """The model that answered a prediction."""

    name: str | None
    version: str | None
    alias: str | None
    uri: str
    run_id: str | None = Field(None, description="The MLflow run of the version (null in history records).")
    label: str = Field(description="Short human name, e.g. 'rookery v3 (champion)'.")


class Detection(BaseModel):
    class_name: str
    class_id: int
    score: float
    x1: float = Field(description="Box corners in pixels of the uploaded photo; (0, 0) is the top-left pixel.")
    y1: float
    x2: float
    y2: float


class PredictionSummary(BaseModel):
    """A counted photo, as listed in the history (without its boxes)."""

    id: str
    created_at: datetime
    file_name: str
    width: int
    height: int
    image_sha256: str
    model: ModelRef
    counts: dict[str, int] = Field(description="Objects per class, every class of the model, in class order.")
    total: int
    intervals: dict[str, tuple[int, int]] | None = Field(
        None,
        description="Each class's count interval [lo, hi] at interval_level (lo <= count <= hi), the classes of "
        "`counts` in its order; null for a prediction stored before intervals existed.",
        examples=[{"adult_males": [2, 6], "pups": [0, 3]}],
    )
    total_interval: tuple[int, int] | None = Field(
        None,
        description="The total's interval: the sum of the class lows and of the class highs. Conservative: at "
        "least as wide as a real interval of the total at interval_level, as the errors of classes partly cancel.",
        examples=[[2, 9]],
    )
    interval_level: float | None = Field(None, description="The intervals' level: 0.9 is a 90 % interval.")
    interval_calibrated: bool | None = Field(
        None,
        description="True when the intervals come from a calibration fitted on held-out photos and in force for "
        "this prediction; false for the uncalibrated default (about ±40 %) or when the request set `conf` (which "
        "replaces the calibrated per-class thresholds).",
    )
    timings_ms: dict[str, float] = Field(description="decode, inference, render and total, in milliseconds.")
    image_url: str | None = Field(description="The annotated photo (JPEG).")
    upload_url: str | None = Field(None, description="The uploaded photo as it was sent.")

    @classmethod
    def of(cls, stored: StoredPrediction, run_id: str | None = None, **extra: Any) -> Self:
        """The API body of a prediction of the history (the one place a Prediction becomes JSON)."""
        p = stored.prediction
        iv = p.intervals
        return cls(
            id=stored.id,
            created_at=stored.created_at,
            file_name=p.image,
            width=p.width,
            height=p.height,
            image_sha256=p.image_sha256,
            model=ModelRef(
                name=p.model.name,
                version=p.model.version,
                alias=p.model.alias,
                uri=redact(p.model.uri),
                run_id=run_id,
                label=p.model.label,
            ),
            counts=p.counts,
            total=p.total,
            intervals=None if iv is None else iv.classes,
            total_interval=None if iv is None else iv.total,  # the sum of the class lows and highs: conservative
            interval_level=None if iv is None else iv.level,
            interval_calibrated=None if iv is None else iv.calibrated,
            timings_ms=p.timings_ms,
            image_url=f"/api/v1/predictions/{stored.id}/image" if stored.has_annotated else None,
            upload_url=f"/api/v1/predictions/{stored.id}/upload" if stored.has_upload else None,
            **({"detections": p.detections()} if "detections" in cls.model_fields else {}),
            **extra,
        )


class Prediction(PredictionSummary):
    detections: list[Detection]
    annotated_image: str | None = Field(
        None, description="The annotated photo as base64 JPEG, when return_image was asked for."
    )
    note: str | None = Field(
        None,
        description="Set when nothing was found: what that may mean, with what the model was trained on.",
    )
    capped: str | None = Field(
        None,
        description="Set when a detection cap was hit (per tile: ROOKERY_MAX_DETECTIONS_PER_TILE, per photo: "
        "ROOKERY_MAX_DETECTIONS_PER_PHOTO): which, and how many were found; the best scoring were kept.",
    )


class FileError(BaseModel):
    file_name: str
    detail: str


class PredictResponse(BaseModel):
    results: list[Prediction]
    errors: list[FileError] = Field(description="Files that could not be counted, each with the reason.")


class PredictionPage(BaseModel):
    items: list[PredictionSummary]
    total: int
    page: int
    per_page: int


class ModelCard(BaseModel):
    """What a model was trained on and what it is for (written at training, in rookery_model.json)."""

    trained_on: str = Field(description="The data set: photos per split, its name and fingerprint.")
    classes: list[str]
    training_objects: dict[str, int] = Field(description="Objects per class in the training tiles.")
    recipe: str = Field(description="heatmap (point counting, calibrated) or yolo (boxes).")
    validation: dict[str, float] = Field(
        description="The run's validation figures: best/* (validation split), heldout/* (the heatmap recipe's "
        "calibration folds: photos it never saw), eval/* (`rookery evaluate`)."
    )
    intended_use: str


class ModelDescription(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str | None
    version: str | None
    alias: str | None
    uri: str
    run_id: str | None
    label: str
    class_names: list[str]
    metrics: dict[str, float] = Field(description="The run's key metrics (best/*, eval/*).")
    loaded_at: datetime
    mlflow_ui_url: str | None = Field(description="The version in the MLflow UI, when ROOKERY_MLFLOW_UI_URL is set.")
    following_alias: bool = Field(description="True when the server follows an alias and swaps on a move.")
    backend: str
    device: str
    tile: int
    overlap: int
    imgsz: int | None
    card: ModelCard


class ReloadResponse(BaseModel):
    changed: bool
    model: ModelDescription


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready", "loading"]
    model: str | None = None
    detail: str | None = Field(None, description="Why the model is not loaded yet, when a load failed.")


class Invocations(BaseModel):
    """MLflow's answer: one record per detection (image row, class, score, box)."""

    predictions: list[dict[str, Any]]
