"""Resolve a model URI of MLflow (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN_ID/PATH`) to a local
folder of its files, downloaded once into a cache and reused (offline too) on later calls.

The cache is keyed by the tracking store, then by name/version or run id; each folder holds a marker file
(`rookery_source.json`: the URI, the run and the sha256 of the weights recorded at registration) written last,
so an interrupted download is never taken for a cached model. rookery.inference.loading reads the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rookery.errors import ConfigError, InputError, RookeryError
from rookery.packaging.client import call, client, is_not_found, unreachable

SOURCE_FILE = "rookery_source.json"  # what the cache folder holds: uri, tracking store, run id, sha256
ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")
RUN = re.compile(r"^runs:/(?P<run>[0-9A-Za-z_-]+)/(?P<path>.+?)/?$")
URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .pt/.onnx file"


@dataclass(frozen=True)
class FetchedModel:
    """A model's files on local disk and where they came from."""

    folder: Path
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    sha256: dict[str, str] = field(default_factory=dict)  # artifact key ("weights", "onnx") -> recorded hash


def is_mlflow_uri(uri: str) -> bool:
    return uri.startswith(("models:/", "runs:/"))


def fetch_model(uri: str, tracking_uri: str, cache_root: Path) -> FetchedModel:
    """The local copy of the model behind an MLflow URI (downloaded on first use; an alias is looked up every
    time, as it may have moved)."""
    cache_root = cache_root / hashlib.sha1(tracking_uri.encode()).hexdigest()[:10]
    if m := RUN.match(uri):
        run_id, path = m["run"], m["path"]
        folder = cache_root / "runs" / run_id / _safe(path)
        if not _cached(folder):
            mlflow = client(tracking_uri)
            missing_run = f"no run {run_id!r} in the tracking store at {tracking_uri}"
            run = call(tracking_uri, lambda: mlflow.get_run(run_id), missing_run)
            _download(uri, folder, tracking_uri, {"sha256": _hashes(run.data.tags)})
        return FetchedModel(folder, None, None, None, run_id, _read_source(folder).get("sha256") or {})

    m = ALIAS.match(uri) or VERSION.match(uri)
    if m is None:
        raise ConfigError(f"model URI {uri!r} is not one of {URI_FORMS}")
    name, alias, version = m["name"], m.groupdict().get("alias"), m.groupdict().get("version")
    version_run: str | None = None
    mv: Any = None
    if alias is not None or version == "latest" or not _cached(cache_root / _safe(name) / str(version)):
        mlflow = client(tracking_uri)

        def missing(what: str) -> str:
            return (
                f"no model {name!r}{' ' + what if what else ''} in the registry at {tracking_uri}; "
                "train one with 'rookery train' or pass a .pt/.onnx"
            )

        if alias is not None:
            by_alias = mlflow.get_model_version_by_alias
            mv = call(tracking_uri, lambda: by_alias(name, alias), missing(f"with alias {alias!r}"))
        elif version == "latest":
            versions = call(tracking_uri, lambda: mlflow.search_model_versions(f"name='{name}'"), missing(""))
            if not versions:
                raise RookeryError(missing("(it has no versions)"))
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = call(tracking_uri, lambda: mlflow.get_model_version(name, version), missing(f"version {version}"))
        version, version_run = str(mv.version), mv.run_id or None
    folder = cache_root / _safe(name) / str(version)
    if not _cached(folder):
        hashes = _hashes(mv.tags or {}) if mv is not None else {}
        _download(f"models:/{name}/{version}", folder, tracking_uri, {"run_id": version_run, "sha256": hashes})
    source = _read_source(folder)
    return FetchedModel(
        folder, name, str(version), alias, version_run or source.get("run_id"), source.get("sha256") or {}
    )


def _hashes(tags: dict[str, str]) -> dict[str, str]:
    """The sha256 of each weights file recorded when the model was logged (packaging.pyfunc._record_hashes)."""
    return {key: tags[f"rookery.sha256.{key}"] for key in ("weights", "onnx") if f"rookery.sha256.{key}" in tags}


def _safe(part: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]", "_", part)


def _cached(folder: Path) -> bool:
    return (folder / SOURCE_FILE).is_file()


def _read_source(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / SOURCE_FILE).read_text()))
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
        (tmp / SOURCE_FILE).write_text(json.dumps({"uri": uri, "tracking_uri": tracking_uri, **(extra or {})}))
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
    if is_not_found(e):
        return InputError(f"{uri} has no model files in the tracking store at {tracking_uri}")
    if isinstance(e, OSError) and not isinstance(e, ConnectionError):
        return InputError(f"{uri}: its files could not be downloaded ({e})")
    return unreachable(tracking_uri, e)
