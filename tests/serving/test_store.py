"""The prediction history store against real SQLite and PostgreSQL databases (PostgreSQL skips when none answers)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from serving_helpers import prediction_with
from sqlalchemy import text

from rookery.errors import ConfigError, InputError
from rookery.serving import history_db
from rookery.serving import store as store_module
from rookery.serving.store import PredictionStore, StoredPrediction, sanitize_file_name
from rookery.types import CountIntervals, ModelRef, Prediction

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64  # only the magic bytes matter to the store
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'history.db'}"  # the folder does not exist yet: the store makes it
    return str(request.getfixturevalue("postgres_db"))


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def store(url: str, files_dir: Path) -> Iterator[PredictionStore]:
    s = PredictionStore(url, files_dir)
    yield s
    s.close()


def new(
    name: str = "survey 1.jpg", counts: dict[str, int] | None = None, intervals: CountIntervals | None = None
) -> Prediction:
    # not sorted, keys of different lengths: a store that reorders keys (PostgreSQL's JSONB does) fails
    counts = {"adult_males": 2, "pups": 3, "juveniles": 0} if counts is None else counts
    return prediction_with(
        name,
        counts,
        image_sha256=hashlib.sha256(name.encode()).hexdigest(),
        width=1024,
        height=768,
        model=ModelRef("models:/rookery@champion", "rookery", "3", "champion"),
        timings_ms={"decode": 1.5, "inference": 20.0, "total": 22.0},
        intervals=intervals,
    )


INTERVALS = CountIntervals(0.9, False, {"adult_males": (1, 4), "pups": (2, 6), "juveniles": (0, 1)})


def test_add_then_get_returns_the_same_record_with_files_named_by_the_server(
    store: PredictionStore, files_dir: Path
) -> None:
    record = store.add(new(), JPEG, b"annotated")
    assert isinstance(record, StoredPrediction)
    assert len(record.id) == 32 and uuid.UUID(hex=record.id).version == 4
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset() == UTC.utcoffset(None)
    assert record.prediction.total == 5 and record.prediction.counts == {"adult_males": 2, "pups": 3, "juveniles": 0}
    assert list(record.prediction.counts) == ["adult_males", "pups", "juveniles"]  # class order kept
    assert record.has_upload and record.has_annotated
    got = store.get(record.id)
    assert got == record
    assert got is not None and list(got.prediction.counts) == [
        "adult_males",
        "pups",
        "juveniles",
    ]  # read back in class order
    assert got.prediction.detections()[0]["x2"] == 10.25 and got.prediction.timings_ms["inference"] == 20.0

    upload, annotated = store.file_path(record.id, "upload"), store.file_path(record.id, "annotated")
    assert upload == files_dir / record.id / "upload.jpg" and upload.read_bytes() == JPEG
    assert annotated == files_dir / record.id / "annotated.jpg" and annotated.read_bytes() == b"annotated"
    assert sorted(p.name for p in files_dir.iterdir()) == [record.id]  # no staging leftovers


def test_count_intervals_round_trip_in_class_order(store: PredictionStore) -> None:
    record = store.add(new(intervals=INTERVALS), JPEG, None)
    got = store.get(record.id)
    assert got is not None and got == record and got.prediction.intervals == INTERVALS
    assert list(got.prediction.intervals.classes) == ["adult_males", "pups", "juveniles"]  # the order of the counts
    assert got.prediction.intervals.total == (3, 11)  # the sum of the lows and of the highs
    assert store.page(1, 1)[0][0].prediction.intervals == INTERVALS
    assert next(store.iter_all()).prediction.intervals == INTERVALS
    calibrated = CountIntervals(0.8, True, {"pups": (7, 19)})
    again = store.get(store.add(new(counts={"pups": 12}, intervals=calibrated), JPEG, None).id)
    assert again is not None and again.prediction.intervals == calibrated


def test_a_prediction_without_intervals_is_stored_as_null(store: PredictionStore) -> None:
    record = store.add(new(), JPEG, None)
    got = store.get(record.id)
    assert record.prediction.intervals is None and got is not None and got.prediction.intervals is None
    with store._engine.connect() as connection:  # SQL NULL, not the JSON text 'null'
        query = text("SELECT count_intervals IS NULL FROM predictions WHERE id = :id")
        assert bool(connection.execute(query, {"id": record.id}).scalar_one())


def test_rows_of_a_history_made_before_intervals_load_after_the_migration(url: str, files_dir: Path) -> None:
    """A history at revision 0001 (before count intervals) with one row: opening it migrates it, the old row loads
    with no intervals, new rows get theirs; downgrading drops the column and keeps the rows."""
    import sqlalchemy as sa
    from alembic import command

    engine = history_db.make_engine(history_db.normalize_url(url))
    config = history_db.alembic_config()
    old_id = uuid.uuid4().hex
    old_row: dict[str, Any] = {
        "id": old_id,
        "created_at": datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        "file_name": "old.jpg",
        "image_sha256": "0" * 64,
        "width": 640,
        "height": 480,
        "model_uri": "models:/rookery/1",
        "model_name": "rookery",
        "model_version": "1",
        "model_alias": None,
        "counts": {"pups": 4, "adult_males": 1},
        "total": 5,
        "detections": [  # one per counted object, as rookery always stored them
            {"class_name": n, "class_id": c, "score": 0.5, "x1": 1.0, "y1": 2.0, "x2": 9.0, "y2": 9.5}
            for n, c in (("pups", 0),) * 4 + (("adult_males", 1),)
        ],
        "timings": {"total": 10.0},
        "upload_ext": None,
        "has_annotated": False,
    }
    table = sa.table(  # the table as revision 0001 made it
        "predictions",
        *(sa.column(k) for k in old_row if k not in ("created_at", "counts", "detections", "timings")),
        sa.column("created_at", history_db.UTCDateTime()),
        *(sa.column(k, sa.JSON()) for k in ("counts", "detections", "timings")),
    )
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(table.insert().values(**old_row))
    finally:
        engine.dispose()

    s = PredictionStore(url, files_dir)
    try:
        old = s.get(old_id)
        assert old is not None and old.prediction.intervals is None
        assert (
            old.prediction.counts == {"pups": 4, "adult_males": 1}
            and old.prediction.total == 5
            and old.prediction.image == "old.jpg"
        )
        fresh = s.add(new(intervals=INTERVALS), JPEG, None)
        assert [r.prediction.intervals for r in s.iter_all()] == [INTERVALS, None]
        with s._writer.connect() as connection, connection.begin():
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
            columns = {c["name"] for c in sa.inspect(connection).get_columns("predictions")}
            assert "count_intervals" not in columns
            ids = connection.execute(text("SELECT id FROM predictions")).scalars().all()
            assert sorted(ids) == sorted([old_id, fresh.id])
    finally:
        s.close()


def test_upload_type_is_judged_by_content_not_by_the_clients_name(store: PredictionStore) -> None:
    record = store.add(new("photo.jpg"), PNG, None)
    assert store.file_path(record.id, "upload") == store.files_dir / record.id / "upload.png"
    assert not record.has_annotated and store.file_path(record.id, "annotated") is None


def test_page_is_newest_first_with_the_total(store: PredictionStore) -> None:
    ids = [store.add(new(f"p{i}.jpg", {"a": i}), JPEG, None).id for i in range(5)]
    first, total = store.page(1, 2)
    assert total == 5 and [r.id for r in first] == ids[::-1][:2]
    assert [r.prediction.image for r in store.page(2, 2)[0]] == ["p2.jpg", "p1.jpg"]
    last, total = store.page(3, 2)
    assert [r.id for r in last] == [ids[0]] and total == 5
    assert store.page(4, 2) == ([], 5)
    with pytest.raises(InputError):
        store.page(0, 2)
    with pytest.raises(InputError):
        store.page(1, 0)


def test_iter_all_streams_every_record_newest_first(store: PredictionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_CHUNK", 2)  # several chunks with 5 rows
    ids = [store.add(new(f"p{i}.jpg"), JPEG, None).id for i in range(5)]
    assert [r.id for r in store.iter_all()] == ids[::-1]


def test_empty_history(store: PredictionStore) -> None:
    assert store.page(1, 20) == ([], 0)
    assert list(store.iter_all()) == []


def test_delete_removes_the_row_and_its_files(store: PredictionStore, files_dir: Path) -> None:
    keep = store.add(new("keep.jpg"), JPEG, b"a")
    gone = store.add(new("gone.jpg"), JPEG, b"b")
    assert store.delete(gone.id) is True
    assert store.get(gone.id) is None
    assert not (files_dir / gone.id).exists()
    assert store.file_path(gone.id, "upload") is None
    assert store.delete(gone.id) is False
    assert store.page(1, 10) == ([keep], 1)
    assert store.file_path(keep.id, "annotated") is not None


BAD_IDS = [
    "",
    "x",
    "../../etc/passwd",
    "A" * 32,
    "g" * 32,
    "0" * 31,
    "0" * 33,
    "0" * 32 + "\n",
    "%00",
    "é" * 32,
    None,
    7,
]


def test_malformed_ids_answer_none_never_an_error(store: PredictionStore) -> None:
    store.add(new(), JPEG, b"a")
    for bad_id in BAD_IDS:
        assert store.get(bad_id) is None, bad_id  # type: ignore[arg-type]
        assert store.delete(bad_id) is False, bad_id  # type: ignore[arg-type]
        assert store.file_path(bad_id, "upload") is None, bad_id  # type: ignore[arg-type]
        assert store.file_path(bad_id, "annotated") is None, bad_id  # type: ignore[arg-type]
    assert store.page(1, 10)[1] == 1


def test_unknown_id_is_none(store: PredictionStore) -> None:
    store.add(new(), JPEG, b"a")
    unknown = uuid.uuid4().hex
    assert store.get(unknown) is None and store.delete(unknown) is False
    assert store.file_path(unknown, "upload") is None


def test_history_survives_reopening(url: str, files_dir: Path) -> None:
    first = PredictionStore(url, files_dir)
    record = first.add(new(), JPEG, b"a")
    first.close()
    again = PredictionStore(url, files_dir)
    try:
        assert again.get(record.id) == record
        assert again.page(1, 10) == ([record], 1)
        assert again.file_path(record.id, "annotated") is not None
    finally:
        again.close()


def test_migration_is_idempotent_and_matches_the_model(url: str, files_dir: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    for _ in range(3):  # opening an up-to-date database changes nothing
        PredictionStore(url, files_dir).close()
    s = PredictionStore(url, files_dir)
    try:
        with s._engine.connect() as connection:
            head = ScriptDirectory.from_config(history_db.alembic_config()).get_current_head()
            assert head == "0002"  # the count intervals
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            # The migrations build exactly the table the ORM model describes (a change to one needs the other).
            assert compare_metadata(context, store_module.Base.metadata) == []
    finally:
        s.close()


def test_processes_opening_a_new_database_at_once_all_succeed(url: str, files_dir: Path, tmp_path: Path) -> None:
    """Two servers starting together both migrate: one creates the schema, the other waits and finds it there."""
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        import alembic.command, alembic.config, alembic.script, sqlalchemy.dialects.sqlite
        from rookery.serving.store import PredictionStore
        from rookery.types import Boxes, Prediction
        while not Path({str(go)!r}).exists():  # imports done: start together
            time.sleep(0.01)
        s = PredictionStore({url!r}, Path({str(files_dir)!r}))
        s.add(Prediction("x.jpg", ("a",), Boxes.empty()), b"", None)
        s.close()
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    s = PredictionStore(url, files_dir)
    try:
        records, total = s.page(1, 10)
        assert total == 2 and all(not r.has_upload for r in records)
    finally:
        s.close()


def test_concurrent_adds_from_threads(store: PredictionStore) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        try:
            for i in range(8):
                rid = store.add(new(f"t{n}-{i}.jpg"), JPEG, b"a").id
                assert store.get(rid) is not None
                store.page(1, 5)
                with lock:
                    results.append(rid)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 64
    assert store.page(1, 1)[1] == 64
    assert {r.id for r in store.iter_all()} == set(results)


def test_a_hostile_file_name_is_stored_sanitised_and_never_used_as_a_path(
    store: PredictionStore, files_dir: Path, tmp_path: Path
) -> None:
    record = store.add(new("../../etc/passwd"), JPEG, b"a")
    assert record.prediction.image == "passwd" and store.get(record.id) == record
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and "files" in p.parts)
    assert written == [Path("files") / record.id / "annotated.jpg", Path("files") / record.id / "upload.jpg"]
    assert not (files_dir.parent / "etc").exists()


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/photo.JPG", "photo.JPG"),
        ("a\x00b\nc\x1b[31m.jpg", "abc[31m.jpg"),
        ("  spaced name.png  ", "spaced name.png"),
        ("..", "image"),
        ("", "image"),
        ("dir/", "image"),
        ("\u202eevil\u200b.jpg", "evil.jpg"),  # bidi override and zero-width space are format characters
        ("ok_ünïcødé.jpg", "ok_ünïcødé.jpg"),
    ],
)
def test_sanitize_file_name(given: str, shown: str) -> None:
    assert sanitize_file_name(given) == shown


def test_long_file_names_are_capped_keeping_the_extension() -> None:
    shown = sanitize_file_name("x" * 5000 + ".jpeg")
    assert len(shown) == 200 and shown.endswith("….jpeg")


@pytest.mark.parametrize(
    "bad",
    [
        "not a url",
        "nosuchdb://host/db",
        "sqlite:///:memory:",
        "sqlite://",
    ],
)
def test_bad_urls_are_config_errors(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ROOKERY_HISTORY_URL|history URL"):
        PredictionStore(bad, tmp_path / "files")


def test_unreachable_postgresql_is_a_config_error(loopback_port: int, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{loopback_port}/nothing"  # nothing listens there
    with pytest.raises(ConfigError, match="ROOKERY_HISTORY_URL") as caught:
        PredictionStore(url, tmp_path / "files")
    assert "secret" not in str(caught.value)  # passwords never reach a message or a log
    assert "\n" not in str(caught.value)


def test_postgresql_url_without_a_driver_uses_psycopg(postgres_db: str, tmp_path: Path) -> None:
    plain = postgres_db.replace("postgresql+psycopg://", "postgresql://")
    s = PredictionStore(plain, tmp_path / "files")
    try:
        assert s.url.drivername == "postgresql+psycopg"
        assert s.get(s.add(new(), JPEG, None).id) is not None
    finally:
        s.close()


def test_unknown_file_kind_is_a_programming_error(store: PredictionStore) -> None:
    record = store.add(new(), JPEG, None)
    with pytest.raises(ValueError):
        store.file_path(record.id, "secrets")  # type: ignore[arg-type]
