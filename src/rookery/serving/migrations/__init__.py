"""Alembic migrations of the prediction history; PredictionStore runs them when it opens (no alembic.ini).

To change the schema: edit the model in store.py, then write the next revision with

    .venv/bin/python -c "from rookery.serving.migrations import revision; revision('add a column')"

which compares the model with a fresh database at head and writes versions/<NNNN>_<slug>.py for review.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def revision(message: str) -> Path:
    """Autogenerate the next numbered revision from the difference between store.py's model and head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from rookery.serving.history_db import alembic_config
    from rookery.serving.store import PredictionStore

    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    rev_id = f"{int(head or 0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        store = PredictionStore(f"sqlite:///{tmp}/history.db", Path(tmp) / "files")
        try:
            with store._engine.connect() as connection:
                config.attributes["connection"] = connection
                script = command.revision(config, message, autogenerate=True, rev_id=rev_id)
        finally:
            store.close()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
