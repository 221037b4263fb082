"""A model's files on disk -> ModelInfo -> a Predictor: `rookery_model.json` gives the class names, tile,
overlap, network input size, calibration and canonical resolution the Predictor is built with (options the caller
passes override them). A local .pt/.onnx file uses a `rookery_model.json` beside it when there is one, else the
defaults; a logged model's folder (MLmodel + artifacts/) names its files in MLmodel.

Model URIs (`models:/NAME@ALIAS`, `runs:/RUN_ID/model`) are resolved to such a folder by the MLflow wing:
call `rookery.packaging.models.load_predictor(uri)`, which works for files too. Nothing here imports mlflow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rookery.errors import InputError
from rookery.types import ModelRef

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor

META_FILE = "rookery_model.json"
_PASS_ONE = "pass a .pt/.onnx file or a model URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model)"


@dataclass(frozen=True)
class ModelInfo:
    """Where a model came from and how it was packaged. `class_names` is empty for a bare local file
    until it is loaded (load_predictor fills it in from the network)."""

    uri: str
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    weights: Path
    onnx: Path | None
    class_names: tuple[str, ...]
    tile: int
    overlap: int
    imgsz: int | None
    meta: dict[str, Any] = field(default_factory=dict)  # all of rookery_model.json (calibration, canonical, ...)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.uri, self.name, self.version, self.alias)

    @property
    def label(self) -> str:
        """A short human name: `rookery v3 (champion)`, `run 1a2b3c4d`, or the file name."""
        if self.name and self.version:
            return self.ref.label
        if self.run_id:
            return f"run {self.run_id[:8]}"
        return self.weights.name


def build_predictor(
    info: ModelInfo, backend: str = "auto", device: str = "auto", **options: Any
) -> tuple[Predictor, ModelInfo]:
    """The Predictor for a resolved model, built with its tile/overlap/imgsz unless `options` say otherwise.

    `options` are PredictOptions fields (tile, overlap, conf, iou, batch, merge, imgsz); None values are
    ignored, so a CLI can pass its options straight through.
    """
    from rookery.inference.options import PredictOptions

    given = {k: v for k, v in options.items() if v is not None}
    packaged = {"tile": info.tile, "overlap": info.overlap, "imgsz": info.imgsz}
    if "tile" in given and "imgsz" not in given and info.imgsz is not None:
        # Keep the network's view of the animals: a tile of another size is resized by the trained ratio.
        given["imgsz"] = max(1, round(given["tile"] * info.imgsz / info.tile))
    # Validates every option (a ConfigError naming the bad one) before the network is loaded.
    opts = PredictOptions().with_overrides(**{**packaged, **given})
    # The ONNX export for the backends that run it; "auto" takes the .pt and open_backend finds the export beside
    # it (a logged model keeps both in artifacts/): torch on a GPU, OpenVINO or ONNX Runtime on the CPU.
    weights = info.onnx if backend in ("onnx", "openvino") and info.onnx is not None else info.weights
    predictor = predictor_from_meta(weights, info.meta, backend, device, opts, conf_given="conf" in given)
    names = predictor.class_names
    if info.class_names and tuple(info.class_names) != tuple(names):
        raise InputError(
            f"{info.label}: its rookery_model.json names the classes {list(info.class_names)} but the network "
            f"has {list(names)}; the package is inconsistent"
        )
    return predictor, replace(info, class_names=tuple(names))


def predictor_from_meta(
    weights: Path,
    meta: dict[str, Any],
    backend: str = "auto",
    device: str = "auto",
    options: Any = None,
    conf_given: bool = False,
) -> Predictor:
    """A Predictor for these weights with what rookery_model.json says: geometry, the count calibration
    (per-class thresholds and intervals; the thresholds are dropped when the caller set `conf`) and the
    ground resolution (photos resized to the model's). Shared by load_predictor and the pyfunc model."""
    from dataclasses import replace as dc_replace

    from rookery.inference.backends import open_backend
    from rookery.inference.calibration import CountCalibration
    from rookery.inference.canonical import Canonical
    from rookery.inference.options import PredictOptions
    from rookery.inference.predictor import Predictor

    if options is None:
        options = PredictOptions(tile=int(meta.get("tile", 640)), overlap=int(meta.get("overlap", 64)),
                                 imgsz=_opt_int(meta.get("imgsz")))  # fmt: skip
    be = open_backend(Path(weights), backend, device)  # type: ignore[arg-type]
    nc = len(be.class_names)
    calibration = None
    if isinstance(meta.get("calibration"), dict):
        calibration = CountCalibration.from_dict(meta["calibration"], nc)
        if conf_given:
            calibration = dc_replace(calibration, thresholds=None)
    canonical = Canonical.from_dict(meta.get("canonical"))
    return Predictor(be, options, calibration=calibration, canonical=canonical)


# --- local files ---------------------------------------------------------------------------------------


def resolve_file(path: Path) -> ModelInfo:
    if not path.exists():
        raise InputError(f"model file {path} does not exist; {_PASS_ONE}")
    if path.is_dir():
        return _from_folder(str(path), path, name=None, version=None, alias=None, run_id=None)
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".onnx"):
        raise InputError(f"{path.name} is neither a PyTorch checkpoint (.pt) nor an ONNX model (.onnx)")
    meta = _read_meta(path.parent / META_FILE) if (path.parent / META_FILE).is_file() else {}
    onnx = path if suffix == ".onnx" else _sibling(path, ".onnx")
    return ModelInfo(
        uri=str(path),
        name=None,
        version=None,
        alias=None,
        run_id=None,
        weights=path,
        onnx=onnx,
        class_names=tuple(meta.get("class_names", ())),
        tile=int(meta.get("tile", 640)),
        overlap=int(meta.get("overlap", 64)),
        imgsz=_opt_int(meta.get("imgsz")),
        meta=meta,
    )


def _sibling(path: Path, suffix: str) -> Path | None:
    other = path.with_suffix(suffix)
    return other if other.is_file() else None


def _opt_int(value: object) -> int | None:
    return None if value in (None, "") else int(value)  # type: ignore[call-overload]


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        meta["tile"], meta["overlap"] = int(meta["tile"]), int(meta["overlap"])
        meta["class_names"] = [str(n) for n in meta["class_names"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"{path} is not a valid rookery model description (needs class_names, tile, overlap, imgsz): {e}"
        ) from e
    return meta


def _from_folder(
    uri: str, folder: Path, name: str | None, version: str | None, alias: str | None, run_id: str | None
) -> ModelInfo:
    """A downloaded MLflow model folder (MLmodel + artifacts/) or a plain folder with best.pt and the json."""
    artifacts = _pyfunc_artifacts(folder)
    meta_path = artifacts.get("meta") or next(iter(folder.rglob(META_FILE)), None)
    weights = artifacts.get("weights") or artifacts.get("onnx")
    if meta_path is None or weights is None:
        raise InputError(
            f"{uri} was not packaged by rookery (no {META_FILE} and weights in it); "
            "log models with 'rookery train' or pass a .pt/.onnx file"
        )
    for path in (meta_path, weights, artifacts.get("onnx")):
        if path is not None and not path.is_file():
            raise InputError(f"{uri} is incomplete: {path.name} is missing from its files")
    meta = _read_meta(meta_path)
    return ModelInfo(
        uri=uri,
        name=name,
        version=version,
        alias=alias,
        run_id=run_id,
        weights=weights,
        onnx=artifacts.get("onnx"),
        class_names=tuple(meta["class_names"]),
        tile=meta["tile"],
        overlap=meta["overlap"],
        imgsz=_opt_int(meta.get("imgsz")),
        meta=meta,
    )


def _pyfunc_artifacts(folder: Path) -> dict[str, Path]:
    """Artifact key -> local path, from the MLmodel file of a pyfunc model (empty when there is none)."""
    import yaml

    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        return {}
    try:
        spec = yaml.safe_load(mlmodel.read_text()) or {}
        entries = spec["flavors"]["python_function"].get("artifacts") or {}
        return {key: folder / str(value["path"]) for key, value in entries.items()}
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


# --- models fetched from MLflow (rookery.packaging.resolve) ------------------------------------------------


def model_from_folder(
    uri: str,
    folder: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    sha256: dict[str, str] | None = None,
) -> ModelInfo:
    """The model in a local copy of a logged model, its weights checked against the sha256 recorded when it was
    logged (None or empty: nothing recorded, e.g. models logged before hashes were)."""
    info = _from_folder(uri, folder, name=name, version=version, alias=alias, run_id=run_id)
    _check_hashes(info, sha256 or {})
    return info


def _check_hashes(info: ModelInfo, hashes: dict[str, str]) -> None:
    """Refuse weights whose sha256 differs from the one recorded when the model was logged (a tag in the tracking
    store, read when the model was downloaded and kept with the cached copy, so a cached model is checked again on
    every load, offline too). Models logged before hashes were recorded carry none and load."""
    for key, path in (("weights", info.weights), ("onnx", info.onnx)):
        expected = hashes.get(key)
        if expected and path is not None and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise InputError(
                f"{info.uri}: its {path.name} does not match the sha256 recorded when it was registered; refused "
                "(the artifact store was changed after registration: register the model again)"
            )
