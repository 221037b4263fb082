"""Fuzzing the API from its own OpenAPI schema (schemathesis): whatever a client sends, no answer is a 5xx and
the server keeps answering.

Every operation in /openapi.json gets a bounded number of generated requests, both fitting the schema and
deliberately not fitting it (negative mode), sent to the app in-process (ASGI). Only "no 5xx" is checked: the
generated photos are random bytes, so 4xx answers are expected and fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import READY_WAIT_S, run_generated_cases, settings_for

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 20


@pytest.fixture
def fuzz_app(trained_model, tmp_path: Path) -> Iterator[Any]:
    from schemathesis.python import asgi

    from rookery.serving.app import create_app

    # No background registry polls while fuzzing: one run failed with CPython 3.11's spurious SystemError "AST
    # constructor recursion depth mismatch" (its AST recursion counter is shared by threads; python/cpython
    # gh-106905), hypothesis parsing source here while the holder's thread ran. POST /model/reload still checks.
    app = create_app(settings_for(tmp_path / "home", registry_poll_seconds=3600))
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()  # schemathesis keeps an app's lifespan running until told


def test_no_generated_request_gets_a_5xx(fuzz_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)  # starts the app's lifespan
    assert fuzz_app.state.holder.wait_loaded(READY_WAIT_S), "the model did not load"
    server_errors: list[str] = []
    answers: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        def send(case: Any) -> None:
            response = case.call()
            answers[(case.operation.label, response.status_code)] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                )

        run_generated_cases(operation, EXAMPLES_PER_OPERATION, send, None)
    assert server_errors == [], "\n".join(server_errors[:10])
    print("\n".join(f"{label} -> {status}: {n}" for (label, status), n in sorted(answers.items())))
    assert sum(answers.values()) >= len(operations) * 10  # the fuzzing did send requests
    # still up, and the model still answers
    with schemathesis.python.asgi.get_client(fuzz_app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
