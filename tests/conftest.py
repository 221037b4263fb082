"""Shared fixtures and the network guard.

The guard fails any test that opens a connection to, or resolves, a host that is not on loopback:
rookery must work offline, so a test that reaches out is a bug (see ../shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEALIONS = Path(os.environ.get("ROOKERY_SEALIONS_DIR", REPO.parent / "shared" / "data" / "sealions"))

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", None}


def _is_local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback or str(host) in ("0.0.0.0", "::")
    except ValueError:
        return False


def _network_guard(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
        if not _is_local(host):
            raise ConnectionRefusedError(f"test tried to resolve non-loopback host {host!r}")
    elif event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise ConnectionRefusedError(f"test tried to connect to non-loopback address {address!r}")


sys.addaudithook(_network_guard)

# Offline switches and third-party caches (Ultralytics, Matplotlib) for the whole session, outside ~.
from processes import free_port, stop_process  # noqa: E402
from rookery.config import Settings  # noqa: E402
from rookery.offline import ensure_offline  # noqa: E402

ensure_offline(Settings(home=Path(tempfile.mkdtemp(prefix="rookery-test-"))))


@pytest.fixture(autouse=True)
def rookery_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own ROOKERY_HOME, so nothing leaks between tests or into the repo."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ROOKERY_HOME", str(home))
    for key in (
        "ROOKERY_TRACKING_URI",
        "ROOKERY_HISTORY_URL",
        "ROOKERY_MODEL_URI",
        "ROOKERY_API_KEY",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_RUN_ID",
    ):
        monkeypatch.delenv(key, raising=False)
    from rookery.config import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sealions() -> Path:
    """The small real sea lion sample; tests that need it skip with a reason when it is absent."""
    if not (SEALIONS / "points.csv").is_file():
        pytest.skip(f"real sea lion sample not found at {SEALIONS} (set ROOKERY_SEALIONS_DIR)")
    return SEALIONS


# --- real services: an `mlflow server` process on loopback, a fresh PostgreSQL database -------------

PG_ADMIN_URL = os.environ.get("ROOKERY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def loopback_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a test starts."""
    return free_port()


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards), as a SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg")
    name = f"rookery_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN_URL}: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MlflowServer:
    """`mlflow server` as a real process on 127.0.0.1, lean (ENVIRONMENT.md): 2 processes, up in ~7 s."""

    def __init__(self, backend_uri: str, artifacts: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


@pytest.fixture
def mlflow_server_factory(tmp_path: Path) -> Iterator[Callable[[str], MlflowServer]]:
    servers: list[MlflowServer] = []

    def start(backend_uri: str = "") -> MlflowServer:
        backend_uri = backend_uri or f"sqlite:///{tmp_path / f'server{len(servers)}.db'}"
        server = MlflowServer(backend_uri, tmp_path / "server-artifacts", tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


# --- a tiny real data set for the tests that train a model ------------------------------------------------


@dataclass(frozen=True)
class TinySurvey:
    survey: Path  # train/, dotted/, masks/, points.csv, classes.yaml
    dataset: Path  # built from it: 2/1/1 photos in train/val/test


@pytest.fixture(scope="session")
def tiny_survey(tmp_path_factory: pytest.TempPathFactory) -> TinySurvey:
    """4 synthetic photos of 384x288 (2 classes) tiled at 128 px, so that animals are large in a 64 px network
    input: a ~10 s CPU training learns the plumbing, not the task."""
    from rookery.data.classes import Classes
    from rookery.data.dataset import BuildParams, build_dataset
    from rookery.data.synthetic import generate_survey

    root = tmp_path_factory.mktemp("tiny")
    survey = generate_survey(root / "survey", images=4, size=(384, 288), num_classes=2, seed=1, workers=1)
    build_dataset(
        survey.out / "points.csv",
        survey.out / "train",
        Classes.load(survey.out / "classes.yaml"),
        root / "dataset",
        masks=survey.out / "masks",
        params=BuildParams(split=(0.5, 0.25, 0.25), tile=128, overlap=16, empty_fraction=0.0),
        workers=1,
    )
    return TinySurvey(survey.out, root / "dataset")


# A tiny real model for prediction, evaluation and serving tests: trained once per session (64 px, 1 epoch,
# CPU), registered in a SQLite store and promoted to `champion`. Tests point ROOKERY_TRACKING_URI at that store
# through the `trained_model` fixture; each test keeps its own ROOKERY_HOME (so its own download cache).
@dataclass(frozen=True)
class TrainedModel:
    tracking_uri: str
    run_id: str
    version: str
    best: Path  # the local best.pt of the training (best.onnx beside it)
    onnx: Path
    photos: Path  # a folder of survey photos (clean, 384x288) the model can be run on
    masks: Path  # their masks, same stems


@pytest.fixture(scope="session")
def _trained_model(tmp_path_factory: pytest.TempPathFactory, tiny_survey) -> TrainedModel:
    from rookery.config import Settings
    from rookery.packaging import registry
    from rookery.training.trainer import TrainParams, train

    root = tmp_path_factory.mktemp("predict-model")
    dataset = tiny_survey.dataset
    settings = Settings(home=root / "home")
    params = TrainParams(data=dataset, epochs=1, imgsz=64, batch=8, device="cpu", workers=0, plots=False)
    result = train(params, settings)
    assert result.model_version is not None and result.onnx is not None and result.run_id is not None
    registry.promote(settings.tracking_uri, settings.model_name, result.model_version)
    return TrainedModel(
        settings.tracking_uri,
        result.run_id,
        result.model_version,
        result.best,
        result.onnx,
        tiny_survey.survey / "train",
        tiny_survey.survey / "masks",
    )


@pytest.fixture
def trained_model(_trained_model: TrainedModel, monkeypatch: pytest.MonkeyPatch) -> TrainedModel:
    """The session's model, with this test's settings pointing at its tracking store."""
    from rookery.config import get_settings

    monkeypatch.setenv("ROOKERY_TRACKING_URI", _trained_model.tracking_uri)
    get_settings.cache_clear()
    return _trained_model
