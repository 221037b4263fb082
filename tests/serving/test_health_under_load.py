"""/health, /ready and /metrics answer at once while every worker thread is busy (issue 16): they run on the event
loop, never in the thread pool that requests counting photos fill, so an orchestrator never restarts a healthy
server under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from serving_helpers import StubHolder, settings_for, threaded_server

SLOW_S = 4.0


def test_health_answers_within_a_second_while_40_slow_requests_run(tmp_path: Path):
    from rookery.serving.app import create_app

    app = create_app(settings_for(tmp_path / "home"), holder=StubHolder())  # type: ignore[arg-type]

    @app.get("/slow")
    def slow() -> dict[str, str]:  # a sync route, like counting a photo: it holds a worker thread
        time.sleep(SLOW_S)
        return {"status": "done"}

    with threaded_server(app) as url:
        answers: list[int] = []

        def call() -> None:
            answers.append(httpx.get(f"{url}/slow", timeout=60).status_code)

        threads = [threading.Thread(target=call) for _ in range(40)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # every thread of the pool (40) is now asleep in /slow
        with httpx.Client(base_url=url, timeout=30) as client:
            for path, status in (("/health", 200), ("/ready", 503), ("/metrics", 200)):
                started = time.perf_counter()
                response = client.get(path)
                seconds = time.perf_counter() - started
                assert response.status_code == status, (path, response.text)
                assert seconds < 1.0, f"{path} took {seconds:.1f} s while the pool was busy"
        for t in threads:
            t.join(60)
        assert answers == [200] * 40
