"""Alembic environment of the prediction history.

PredictionStore runs it programmatically: it passes an open connection, already inside the transaction that
serialises migrations (config.attributes["connection"]), so everything here runs in that one transaction.
New revisions: see revision() in __init__.py; tests/serving/test_store.py checks that the model in store.py and
the migrations agree.
"""

from __future__ import annotations

from alembic import context

from rookery.serving.store import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("rookery's history migrations run from PredictionStore, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things: copy-and-move
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
