"""The prediction history: one row per counted photo (SQLAlchemy 2) plus its images on disk.

SQLite under the home folder by default, PostgreSQL by URL (postgresql+psycopg://...). The schema is created
or migrated with Alembic when a store opens, so a new version of rookery upgrades an old history in place.
Images live under files_dir/<id>/ with names the server chooses (upload.<type by content>, annotated.jpg):
the client's file name is kept only as sanitised display text and never touches the file system.

No ORM object leaves this module: callers get StoredPrediction (rookery's Prediction and what the store adds),
so a detached-instance or lazy-load surprise cannot happen in a request handler, and the database layer can
change freely. The engine's set-up (SQLite pragmas, PostgreSQL, migrations) is in history_db.py.
"""

from __future__ import annotations

import re
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import JSON, Integer, String, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from rookery.errors import ConfigError, InputError, RookeryError
from rookery.imaging import sniff_image_type
from rookery.serving.history_db import (
    UTCDateTime,
    alembic_config,
    disk_full,
    make_engine,
    normalize_url,
    shown,
)
from rookery.types import CountIntervals, ModelRef, Prediction

FileKind = Literal["upload", "annotated"]
_ID = re.compile(r"[0-9a-f]{32}")
_MAX_NAME = 200  # characters of a displayed file name
_PG_MIGRATION_LOCK = 0x726F6F6B  # pg_advisory_xact_lock key ("rook"): one migrator at a time per database
_CHUNK = 500  # rows per query when streaming the whole history
_migrate_lock = threading.Lock()  # alembic's `context` is a module global: one migration per process at a time


# --- the type callers see --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction of the history: rookery's Prediction (image = the client's file name, sanitised by the store)
    and what the store adds to it."""

    prediction: Prediction
    id: str  # uuid4 hex, made by the store
    created_at: datetime  # UTC, tz-aware
    has_upload: bool
    has_annotated: bool


# --- the table ---------------------------------------------------------------------------------------------------


# Plain JSON, not PostgreSQL's JSONB: JSONB reorders object keys, and counts must stay in the model's class order.
JSONType = JSON()
# A JSON column that may be missing: Python None is SQL NULL (plain JSON() would store the JSON text 'null').
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    pass


class _Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    image_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    model_uri: Mapped[str] = mapped_column(String(1000))
    model_name: Mapped[str | None] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(64))
    model_alias: Mapped[str | None] = mapped_column(String(255))
    counts: Mapped[dict[str, int]] = mapped_column(JSONType)
    total: Mapped[int] = mapped_column(Integer)
    detections: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    timings: Mapped[dict[str, float]] = mapped_column(JSONType)
    upload_ext: Mapped[str | None] = mapped_column(String(8))  # None: no upload kept
    has_annotated: Mapped[bool] = mapped_column(default=False)
    # CountIntervals.to_json(); NULL in rows made before intervals existed (migration 0002)
    count_intervals: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)


def _row(pid: str, prediction: Prediction, upload_ext: str | None, has_annotated: bool) -> _Prediction:
    model = prediction.model
    return _Prediction(
        id=pid,
        created_at=datetime.now(UTC),
        file_name=sanitize_file_name(prediction.image),
        image_sha256=prediction.image_sha256,
        width=int(prediction.width),
        height=int(prediction.height),
        model_uri=model.uri,
        model_name=model.name,
        model_version=model.version,
        model_alias=model.alias,
        counts=prediction.counts,
        total=prediction.total,
        detections=prediction.detections(),
        timings={str(k): float(v) for k, v in prediction.timings_ms.items()},
        upload_ext=upload_ext,
        has_annotated=has_annotated,
        count_intervals=None if prediction.intervals is None else prediction.intervals.to_json(),
    )


def _record(row: _Prediction) -> StoredPrediction:
    # A Prediction's counts are its boxes': every row holds one detection per counted object (the counts column
    # is the same figures, kept for whoever reads the table with SQL).
    prediction = Prediction.from_detections(
        row.file_name,
        tuple(row.counts),  # every class of the model, in class order (a JSON object keeps its order)
        list(row.detections),
        intervals=CountIntervals.from_json(row.count_intervals),
        width=row.width,
        height=row.height,
        image_sha256=row.image_sha256,
        model=ModelRef(row.model_uri, row.model_name, row.model_version, row.model_alias),
        timings_ms=dict(row.timings),
    )
    return StoredPrediction(prediction, row.id, row.created_at, row.upload_ext is not None, row.has_annotated)


# --- helpers -----------------------------------------------------------------------------------------------------


def sanitize_file_name(name: str) -> str:
    """Display text for a client's file name: the last path part, no control characters, at most 200 characters."""
    name = re.split(r"[\\/]", str(name))[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "image"
    if len(name) > _MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        keep = f".{suffix}" if dot and stem and len(suffix) <= 10 else ""
        name = name[: _MAX_NAME - len(keep) - 1] + "…" + keep
    return name


def image_extension(data: bytes) -> str:
    """The file extension that matches the bytes (by content, never by the client's name)."""
    kind = sniff_image_type(data)
    return {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind) if kind else "bin"


# --- the store ---------------------------------------------------------------------------------------------------


class PredictionStore:
    """Thread-safe: one Engine (a connection pool), a short Session per call."""

    def __init__(self, url: str, files_dir: Path) -> None:
        self.url = normalize_url(url)
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.files_dir.glob(".*.partial"):  # left by a process killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        self._engine = make_engine(self.url)
        # Writes on SQLite take the write lock up front (BEGIN IMMEDIATE): a read-then-write transaction could
        # otherwise fail at once with "database is locked" when another writer got in between.
        self._writer = self._engine.execution_options(rookery_begin="BEGIN IMMEDIATE")
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)
        try:
            self._migrate()
        except Exception:
            self._engine.dispose()
            raise

    # -- schema

    def _migrate(self) -> None:
        from alembic import command

        config = alembic_config()
        try:
            # One transaction for the check and the upgrade, serialised across processes: SQLite's write lock
            # (BEGIN IMMEDIATE) or a PostgreSQL advisory lock. A second server starting at the same time waits,
            # then finds the schema at head and does nothing.
            with _migrate_lock, self._writer.connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as e:
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise ConfigError(
                f"cannot open the history database {shown(self.url)} ({reason}); check ROOKERY_HISTORY_URL "
                "and that the database server is running"
            ) from e

    # -- API

    def add(self, prediction: Prediction, upload: bytes, annotated_jpeg: bytes | None = None) -> StoredPrediction:
        """Save the files under files_dir/<id>/ (named by the server), then the row; returns the stored record."""
        pid = uuid.uuid4().hex
        ext = image_extension(upload) if upload else None
        staging = self.files_dir / f".{pid}.partial"  # invisible to file_path() until the row exists
        final = self.files_dir / pid
        staging.mkdir(parents=True)
        try:
            if ext is not None:
                (staging / f"upload.{ext}").write_bytes(upload)
            if annotated_jpeg is not None:
                (staging / "annotated.jpg").write_bytes(annotated_jpeg)
            staging.rename(final)
            row = _row(pid, prediction, ext, annotated_jpeg is not None)
            with self._write.begin() as session:
                session.add(row)
            return _record(row)
        except BaseException as e:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            if disk_full(e):
                raise StorageFull(
                    "the server's disk is full: this photo was not stored (nothing half-written was kept); "
                    "free space or lower ROOKERY_RETENTION_DAYS / ROOKERY_RETENTION_GB"
                ) from e
            raise

    def get(self, id: str) -> StoredPrediction | None:
        """The record, or None for an unknown or malformed id (never an exception)."""
        if not _valid_id(id):
            return None
        with self._read() as session:
            row = session.get(_Prediction, id)
            return None if row is None else _record(row)

    def page(self, page: int, per_page: int) -> tuple[list[StoredPrediction], int]:
        """One page (1-based) of the history, newest first, and the number of predictions in all."""
        if page < 1 or per_page < 1:
            raise InputError("page and per_page must be 1 or more")
        with self._read() as session:
            total = session.scalar(select(func.count()).select_from(_Prediction)) or 0
            rows = session.scalars(_newest_first().offset((page - 1) * per_page).limit(per_page)).all()
            return [_record(r) for r in rows], int(total)

    def iter_all(self) -> Iterator[StoredPrediction]:
        """Every record, newest first, fetched in chunks (keyset paging: no session stays open between yields)."""
        after: tuple[datetime, str] | None = None
        while True:
            query = _newest_first().limit(_CHUNK)
            if after is not None:
                created, pid = after
                query = query.where(
                    (_Prediction.created_at < created) | ((_Prediction.created_at == created) & (_Prediction.id < pid))
                )
            with self._read() as session:
                rows = [_record(r) for r in session.scalars(query).all()]
            yield from rows
            if len(rows) < _CHUNK:
                return
            after = (rows[-1].created_at, rows[-1].id)

    def delete(self, id: str) -> bool:
        """Delete the row and its files; False when there was no such prediction."""
        if not _valid_id(id):
            return False
        with self._write.begin() as session:
            row = session.get(_Prediction, id)
            if row is None:
                return False
            session.delete(row)
        shutil.rmtree(self.files_dir / id, ignore_errors=True)
        return True

    def file_path(self, id: str, kind: FileKind) -> Path | None:
        """The stored upload or annotated image of a prediction, or None."""
        record = self._row_files(id)
        if record is None:
            return None
        upload_ext, has_annotated = record
        if kind == "upload":
            name = None if upload_ext is None else f"upload.{upload_ext}"
        elif kind == "annotated":
            name = "annotated.jpg" if has_annotated else None
        else:
            raise ValueError(f"unknown file kind {kind!r}")
        path = self.files_dir / id / name if name else None
        return path if path is not None and path.is_file() else None

    def _row_files(self, id: str) -> tuple[str | None, bool] | None:
        if not _valid_id(id):
            return None
        with self._read() as session:
            found = session.execute(
                select(_Prediction.upload_ext, _Prediction.has_annotated).where(_Prediction.id == id)
            ).first()
        return None if found is None else (found[0], bool(found[1]))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StorageFull(RookeryError):
    """No space left for the history's files or database: HTTP 507."""

    status_code = 507
    kind = "storage_full"


def _valid_id(id: object) -> bool:
    return isinstance(id, str) and _ID.fullmatch(id) is not None


def _newest_first() -> Any:
    return select(_Prediction).order_by(_Prediction.created_at.desc(), _Prediction.id.desc())
