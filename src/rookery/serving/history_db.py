"""The history's database: SQLite (a file, WAL) or PostgreSQL by URL, through SQLAlchemy 2, and its Alembic
migrations. rookery.serving.store keeps the table and the records; this module keeps the engine's set-up.
"""

from __future__ import annotations

import errno
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from rookery.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_S = 30  # how long a writer waits for another process's write lock before failing


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


def shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def alembic_config() -> Any:
    """Alembic's configuration for the packaged migrations folder (no alembic.ini: works from an installed wheel)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, OperationalError) and "full" in str(error.orig or error).lower()  # SQLite: disk is full


def make_engine(url: URL) -> Engine:
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as e:
        raise ConfigError(
            f"the history URL {shown(url)} names a database or driver rookery cannot use ({e}); use sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from e
    except SQLAlchemyError as e:
        raise ConfigError(f"cannot use the history URL {shown(url)}: {e}") from e


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        # Each pooled connection would see its own empty in-memory database.
        raise ConfigError(
            f"the history URL {shown(url)} is not a file; set ROOKERY_HISTORY_URL to sqlite:///PATH/history.db"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # rookery emits BEGIN itself (below): Python's sqlite3 would otherwise not begin a transaction for DDL
        # or SELECT. WAL lets readers go on while one process writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_S * 1000}")
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

    deadline = time.monotonic() + SQLITE_BUSY_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
