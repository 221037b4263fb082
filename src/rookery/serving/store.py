"""The prediction history: one row per counted photo (SQLAlchemy 2) plus its images on disk.

SQLite under the home folder by default, PostgreSQL by URL (postgresql+psycopg://...). The schema is created
or migrated with Alembic when a store opens, so a new version of rookery upgrades an old history in place.
Images live under files_dir/<id>/ with names the server chooses (upload.<type by content>, annotated.jpg):
the client's file name is kept only as sanitised display text and never touches the file system.

No ORM object leaves this module: callers get the frozen dataclasses below, so a detached-instance or
lazy-load surprise cannot happen in a request handler, and the database layer can change freely.
"""

from __future__ import annotations

import errno
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Dialect, Engine, Integer, String, create_engine, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from rookery.errors import ConfigError, InputError, RookeryError
from rookery.imaging import sniff_image_type
from rookery.serving.intervals import CountIntervals

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FileKind = Literal["upload", "annotated"]
_ID = re.compile(r"[0-9a-f]{32}")
_MAX_NAME = 200  # characters of a displayed file name
_SQLITE_BUSY_S = 30  # how long a writer waits for another process's write lock before failing
_PG_MIGRATION_LOCK = 0x726F6F6B  # pg_advisory_xact_lock key ("rook"): one migrator at a time per database
_CHUNK = 500  # rows per query when streaming the whole history
_migrate_lock = threading.Lock()  # alembic's `context` is a module global: one migration per process at a time


# --- the types callers see -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPrediction:
    file_name: str  # the client's name, for display only (sanitised by the store); never used as a path
    image_sha256: str
    width: int
    height: int
    model_uri: str
    model_name: str | None
    model_version: str | None
    model_alias: str | None
    counts: dict[str, int]  # every class of the model, zeros included, in class order
    detections: list[dict[str, Any]]  # {"class_name", "class_id", "score", "x1", "y1", "x2", "y2"} photo pixels
    timings_ms: dict[str, float]
    intervals: CountIntervals | None = None  # None: no intervals (records made before they existed)


@dataclass(frozen=True, kw_only=True)
class PredictionRecord(NewPrediction):
    id: str  # uuid4 hex, made by the store
    created_at: datetime  # UTC, tz-aware
    total: int
    has_upload: bool
    has_annotated: bool


# --- the table ---------------------------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back tz-aware (SQLite keeps no zone, PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the history store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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


def _record(row: _Prediction) -> PredictionRecord:
    return PredictionRecord(
        id=row.id,
        created_at=row.created_at,
        file_name=row.file_name,
        image_sha256=row.image_sha256,
        width=row.width,
        height=row.height,
        model_uri=row.model_uri,
        model_name=row.model_name,
        model_version=row.model_version,
        model_alias=row.model_alias,
        counts=dict(row.counts),
        detections=list(row.detections),
        timings_ms=dict(row.timings),
        intervals=CountIntervals.from_json(row.count_intervals),
        total=row.total,
        has_upload=row.upload_ext is not None,
        has_annotated=row.has_annotated,
    )


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


def normalize_url(url: str) -> URL:
    """Parse a history URL; a PostgreSQL URL without a driver gets psycopg 3 (the driver rookery[serve] installs)."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(
            f"the history URL {url!r} is not a database URL; set ROOKERY_HISTORY_URL to sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from e
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- the store ---------------------------------------------------------------------------------------------------


class PredictionStore:
    """Thread-safe: one Engine (a connection pool), a short Session per call."""

    def __init__(self, url: str, files_dir: Path) -> None:
        self.url = normalize_url(url)
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.files_dir.glob(".*.partial"):  # left by a process killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        self._engine = _make_engine(self.url)
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
                f"cannot open the history database {_shown(self.url)} ({reason}); check ROOKERY_HISTORY_URL "
                "and that the database server is running"
            ) from e

    # -- API

    def add(self, new: NewPrediction, upload: bytes, annotated_jpeg: bytes | None = None) -> PredictionRecord:
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
            row = _Prediction(
                id=pid,
                created_at=datetime.now(UTC),
                file_name=sanitize_file_name(new.file_name),
                image_sha256=new.image_sha256,
                width=int(new.width),
                height=int(new.height),
                model_uri=new.model_uri,
                model_name=new.model_name,
                model_version=new.model_version,
                model_alias=new.model_alias,
                counts={str(k): int(v) for k, v in new.counts.items()},
                total=sum(int(v) for v in new.counts.values()),
                detections=list(new.detections),
                timings={str(k): float(v) for k, v in new.timings_ms.items()},
                upload_ext=ext,
                has_annotated=annotated_jpeg is not None,
                count_intervals=None if new.intervals is None else new.intervals.to_json(),
            )
            with self._write.begin() as session:
                session.add(row)
            return _record(row)
        except BaseException as e:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            if _disk_full(e):
                raise StorageFull(
                    "the server's disk is full: this photo was not stored (nothing half-written was kept); "
                    "free space or lower ROOKERY_RETENTION_DAYS / ROOKERY_RETENTION_GB"
                ) from e
            raise

    def get(self, id: str) -> PredictionRecord | None:
        """The record, or None for an unknown or malformed id (never an exception)."""
        if not _valid_id(id):
            return None
        with self._read() as session:
            row = session.get(_Prediction, id)
            return None if row is None else _record(row)

    def page(self, page: int, per_page: int) -> tuple[list[PredictionRecord], int]:
        """One page (1-based) of the history, newest first, and the number of predictions in all."""
        if page < 1 or per_page < 1:
            raise InputError("page and per_page must be 1 or more")
        with self._read() as session:
            total = session.scalar(select(func.count()).select_from(_Prediction)) or 0
            rows = session.scalars(_newest_first().offset((page - 1) * per_page).limit(per_page)).all()
            return [_record(r) for r in rows], int(total)

    def iter_all(self) -> Iterator[PredictionRecord]:
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


def alembic_config() -> Any:
    """Alembic's configuration for the packaged migrations folder (no alembic.ini: works from an installed wheel)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


class StorageFull(RookeryError):
    """No space left for the history's files or database: HTTP 507."""

    status_code = 507
    kind = "storage_full"


def _disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, OperationalError) and "full" in str(error.orig or error).lower()  # SQLite: disk is full


def _valid_id(id: object) -> bool:
    return isinstance(id, str) and _ID.fullmatch(id) is not None


def _newest_first() -> Any:
    return select(_Prediction).order_by(_Prediction.created_at.desc(), _Prediction.id.desc())


def _make_engine(url: URL) -> Engine:
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as e:
        raise ConfigError(
            f"the history URL {_shown(url)} names a database or driver rookery cannot use ({e}); use sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from e
    except SQLAlchemyError as e:
        raise ConfigError(f"cannot use the history URL {_shown(url)}: {e}") from e


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        # Each pooled connection would see its own empty in-memory database.
        raise ConfigError(
            f"the history URL {_shown(url)} is not a file; set ROOKERY_HISTORY_URL to sqlite:///PATH/history.db"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # rookery emits BEGIN itself (below): Python's sqlite3 would otherwise not begin a transaction for DDL
        # or SELECT. WAL lets readers go on while one process writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_S * 1000}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("rookery_begin", "BEGIN"))

    return engine


def _set_wal(cursor: Any) -> None:
    """PRAGMA journal_mode = WAL, retried: switching a new database to WAL needs its lock, and SQLite does not run
    the busy handler for it, so a second process opening the same new database at that moment gets "database is
    locked" at once (two servers starting together did, now and then)."""
    import sqlite3

    deadline = time.monotonic() + _SQLITE_BUSY_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
