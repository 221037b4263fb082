"""Load a model from any URI: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN_ID/model`, or a file.

    predictor, info = load_predictor("models:/rookery@champion")   # or "runs:/<id>/model", "best.onnx"

An MLflow model is downloaded once into `<home>/cache/models/` (keyed by the tracking store, then by
name/version or run id) and reused on later calls; its `rookery_model.json` gives the class names, tile,
overlap and network input size the Predictor is built with (options the caller passes override them).
A local .pt/.onnx file uses a `rookery_model.json` beside it when there is one, else the defaults.
mlflow is imported only for MLflow URIs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rookery.errors import ConfigError, InputError, RookeryError
from rookery.training.tracking import client as mlflow_client
from rookery.types import ModelRef

if TYPE_CHECKING:
    from rookery.inference.predictor import Predictor

META_FILE = "rookery_model.json"
_SOURCE_FILE = "rookery_source.json"  # what the cache folder holds: uri, name, version, run id
_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")
_RUN = re.compile(r"^runs:/(?P<run>[0-9A-Za-z_-]+)/(?P<path>.+?)/?$")
_URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .pt/.onnx file"
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
            return f"{self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")
        if self.run_id:
            return f"run {self.run_id[:8]}"
        return self.weights.name


def resolve_model(uri: str, tracking_uri: str | None = None) -> ModelInfo:
    """Find (and for MLflow URIs download, once) the model behind `uri`, without loading the network."""
    uri = str(uri).strip()
    if uri.startswith(("models:/", "runs:/")):
        return _resolve_mlflow(uri, tracking_uri)
    if "://" in uri or uri.startswith(("models:", "runs:")):
        raise ConfigError(f"model URI {uri!r} is not one of {_URI_FORMS}")
    return _resolve_file(Path(uri).expanduser())


def load_predictor(
    uri: str,
    backend: str = "auto",
    device: str = "auto",
    tracking_uri: str | None = None,
    **options: Any,
) -> tuple[Predictor, ModelInfo]:
    """The Predictor for `uri`, built with the model's tile/overlap/imgsz unless `options` say otherwise.

    `options` are PredictOptions fields (tile, overlap, conf, iou, batch, merge, imgsz); None values are
    ignored, so a CLI can pass its options straight through.
    """
    from rookery.inference.options import PredictOptions

    info = resolve_model(uri, tracking_uri)
    given = {k: v for k, v in options.items() if v is not None}
    packaged = {"tile": info.tile, "overlap": info.overlap, "imgsz": info.imgsz}
    if "tile" in given and "imgsz" not in given and info.imgsz is not None:
        # Keep the network's view of the animals: a tile of another size is resized by the trained ratio.
        given["imgsz"] = max(1, round(given["tile"] * info.imgsz / info.tile))
    # Validates every option (a ConfigError naming the bad one) before the network is loaded.
    opts = PredictOptions().with_overrides(**{**packaged, **given})
    weights = info.onnx if backend == "onnx" and info.onnx is not None else info.weights
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


def _resolve_file(path: Path) -> ModelInfo:
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


# --- MLflow URIs ---------------------------------------------------------------------------------------


def _resolve_mlflow(uri: str, tracking_uri: str | None) -> ModelInfo:
    from rookery.config import get_settings

    settings = get_settings()
    tracking_uri = tracking_uri or settings.tracking_uri
    store_key = hashlib.sha1(tracking_uri.encode()).hexdigest()[:10]
    cache_root = settings.home / "cache" / "models" / store_key

    if m := _RUN.match(uri):
        run_id, path = m["run"], m["path"]
        folder = cache_root / "runs" / run_id / _safe(path)
        if not _cached(folder):
            client = mlflow_client(tracking_uri)
            missing_run = f"no run {run_id!r} in the tracking store at {tracking_uri}"
            run = _call(tracking_uri, lambda: client.get_run(run_id), missing_run)
            _download(uri, folder, tracking_uri, {"sha256": _hashes(run.data.tags)})
        info = _from_folder(uri, folder, name=None, version=None, alias=None, run_id=run_id)
        _check_hashes(info, _read_source(folder).get("sha256") or {})
        return info

    m = _ALIAS.match(uri) or _VERSION.match(uri)
    if m is None:
        raise ConfigError(f"model URI {uri!r} is not one of {_URI_FORMS}")
    name, alias, version = m["name"], m.groupdict().get("alias"), m.groupdict().get("version")
    version_run: str | None = None
    mv: Any = None
    if alias is not None or version == "latest" or not _cached(cache_root / _safe(name) / str(version)):
        client = mlflow_client(tracking_uri)

        def missing(what: str) -> str:
            return (
                f"no model {name!r}{' ' + what if what else ''} in the registry at {tracking_uri}; "
                "train one with 'rookery train' or pass a .pt/.onnx"
            )

        if alias is not None:
            by_alias = client.get_model_version_by_alias
            mv = _call(tracking_uri, lambda: by_alias(name, alias), missing(f"with alias {alias!r}"))
        elif version == "latest":
            versions = _call(tracking_uri, lambda: client.search_model_versions(f"name='{name}'"), missing(""))
            if not versions:
                raise RookeryError(missing("(it has no versions)"))
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = _call(tracking_uri, lambda: client.get_model_version(name, version), missing(f"version {version}"))
        version, version_run = str(mv.version), mv.run_id or None
    folder = cache_root / _safe(name) / str(version)
    if not _cached(folder):
        hashes = _hashes(mv.tags or {}) if mv is not None else {}
        _download(f"models:/{name}/{version}", folder, tracking_uri, {"run_id": version_run, "sha256": hashes})
    version_run = version_run or _read_source(folder).get("run_id")
    info = _from_folder(uri, folder, name=name, version=str(version), alias=alias, run_id=version_run)
    _check_hashes(info, _read_source(folder).get("sha256") or {})
    return info


def _hashes(tags: dict[str, str]) -> dict[str, str]:
    """The sha256 of each weights file recorded when the model was logged (packaging.pyfunc._record_hashes)."""
    return {key: tags[f"rookery.sha256.{key}"] for key in ("weights", "onnx") if f"rookery.sha256.{key}" in tags}


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


def _safe(part: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]", "_", part)


def _call(tracking_uri: str, fn: Any, missing: str) -> Any:
    """Run one MLflow call: "does not exist" -> a RookeryError saying `missing`; any other failure -> the
    store is unreachable or broken."""
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise RookeryError(missing) from e
        raise _unreachable(tracking_uri, e) from e
    except Exception as e:  # requests / SQLAlchemy errors: the store did not answer
        raise _unreachable(tracking_uri, e) from e


def _unreachable(tracking_uri: str, e: Exception) -> RookeryError:
    reason = next(iter(str(e).strip().splitlines()), "") or type(e).__name__
    return RookeryError(f"cannot reach the MLflow tracking store at {tracking_uri} ({reason[:200]})")


def _cached(folder: Path) -> bool:
    return (folder / _SOURCE_FILE).is_file()


def _read_source(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / _SOURCE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _download(uri: str, folder: Path, tracking_uri: str, extra: dict[str, Any] | None = None) -> None:
    """Download the model's files into `folder`: into a temporary folder first, renamed when complete, so an
    interrupted download is never taken for a cached model."""
    import mlflow.artifacts

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(tmp), tracking_uri=tracking_uri, registry_uri=tracking_uri
                )
            )
        except Exception as e:
            raise _download_error(uri, tracking_uri, e) from e
        if local != tmp:  # MLflow may nest the files one level down; keep the model folder itself
            inner = tmp.with_name(tmp.name + "-model")
            os.replace(local, inner)
            shutil.rmtree(tmp)
            tmp = inner
        (tmp / _SOURCE_FILE).write_text(json.dumps({"uri": uri, "tracking_uri": tracking_uri, **(extra or {})}))
        if folder.exists() and not _cached(folder):  # not one of ours (no marker): replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached it meanwhile: use theirs
            if not _cached(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download_error(uri: str, tracking_uri: str, e: Exception) -> RookeryError:
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException) and e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return InputError(f"{uri} has no model files in the tracking store at {tracking_uri}")
    if isinstance(e, OSError) and not isinstance(e, ConnectionError):
        return InputError(f"{uri}: its files could not be downloaded ({e})")
    return _unreachable(tracking_uri, e)
