"""The `host` fixture of the deploy tests (deploy_host.py says what it is)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_host import Host, make_host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = make_host(tmp_path)
    yield h
    h.stop_all()
