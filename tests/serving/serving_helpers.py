"""Plain helpers of the serving tests (fixtures are in conftest.py): registry moves, settings, waiting for ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import free_port
from rookery.config import Settings, get_settings

READY_WAIT_S = 180  # how long a test waits for a model to load on a busy 2-core machine (a wait, not an assertion)


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    version: str  # the champion's version
    run_id: str


def add_version(registry: Registry, name: str = "rookery") -> str:
    """Register another version with the files of the champion (a new version number, the same network)."""
    from rookery.packaging.client import client

    c = client(registry.tracking_uri)
    first = c.get_model_version(name, registry.version)
    return str(c.create_model_version(name, first.source, run_id=first.run_id).version)


def move_alias(registry: Registry, version: str, name: str = "rookery", alias: str = "champion") -> None:
    from rookery.packaging.client import client

    client(registry.tracking_uri).set_registered_model_alias(name, alias, version)


def settings_for(home: Path, **overrides: Any) -> Settings:
    """Settings of one app: its own home (history, model cache) on the test's tracking store."""
    tracking_uri = overrides.pop("tracking_uri", None) or get_settings().tracking_uri
    overrides.setdefault("allowed_hosts", ["testserver", "localhost", "127.0.0.1", "::1"])  # TestClient: testserver
    return Settings(home=home, tracking_uri=tracking_uri, **overrides)


def wait_ready(client: Any, timeout: float = READY_WAIT_S) -> dict[str, Any]:
    """Poll /ready (TestClient or httpx.Client) until the model is loaded."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/ready")
        if response.status_code == 200:
            return dict(response.json())
        assert time.monotonic() < deadline, f"the model did not load: {response.text}"
        time.sleep(0.1)


# --- a real `rookery serve` process on loopback -----------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def live_server(home: Path, tracking_uri: str, *args: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """`python -m rookery serve ARGS` with its own home, on a free loopback port; stopped (SIGTERM) at the end."""
    import httpx

    port = free_port()
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ROOKERY_") and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")
    }
    clean |= {"ROOKERY_HOME": str(home), "ROOKERY_TRACKING_URI": tracking_uri, **(env or {})}
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serve.log"
    cmd = [sys.executable, "-m", "rookery", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=clean, cwd=home)
    server = LiveServer(f"http://127.0.0.1:{port}", log, proc)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            assert proc.poll() is None, f"rookery serve exited with {proc.returncode}:\n{server.output()[-3000:]}"
            try:
                if httpx.get(f"{server.url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"rookery serve was not ready:\n{server.output()[-3000:]}"
            time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def threaded_server(app: Any) -> Iterator[str]:
    """An app under a real uvicorn server in a thread of this process, on a free loopback port; yields its URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the threaded server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class StubHolder:
    """A ModelHolder without a model (it never loads one): for tests of what does not count photos."""

    uri = "models:/stub@champion"
    last_error: str | None = "C:\\secret\\path\\model.pt was not found"
    metrics: Any = None
    current: Any = None
    following_alias = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wait_first_load(self, timeout: float) -> Any:
        return None


def run_generated_cases(
    operation: Any, examples: int, send: Callable[[Any], None], on_failure: Callable[[str, BaseException], None] | None
) -> None:
    """Send `examples` schemathesis cases of one operation, schema-valid ones then invalid ones, the same cases on
    every run (derandomized, no example database). `on_failure(mode name, error)` collects what a case raised;
    without it the error propagates. An operation with nothing to make invalid (no parameters) is skipped there."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            send(case)

        try:
            run()
        except Unsatisfiable:  # nothing to break in an operation without parameters (GET /health)
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
        except BaseException as e:  # schemathesis' FailureGroup, raised once hypothesis has shrunk the case
            if on_failure is None or isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            on_failure(mode.name, e)


def prediction_with(name: str, counts: dict[str, int], **fields: Any) -> Any:
    """A Prediction with these counts per class (the boxes made up: a 10-pixel square per object)."""
    import numpy as np

    from rookery.types import Boxes, Prediction

    cls = np.repeat(np.arange(len(counts)), list(counts.values()))
    xyxy = np.array([[1.5 + i, 2.0, 10.25 + i, 12.0] for i in range(len(cls))]).reshape(-1, 4)
    boxes = Boxes(xyxy, cls, np.full(len(cls), 0.9))
    return Prediction(name, tuple(counts), boxes, **fields)
