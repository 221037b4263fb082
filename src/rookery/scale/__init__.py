"""Counting a large collection on a Ray cluster: `rookery predict SOURCES --out DIR --cluster ray`.

    from rookery.scale import count_collection
    summary = count_collection(photos, out, "models:/rookery@champion", cluster="ray")

The same counts as `rookery predict` (the same Predictor counts each photo), computed by a Ray Data pipeline
that streams photos through model actors and commits results in atomic part files, so a rerun skips what is
written and a crash loses only the photos in flight. See docs/scaling.md.

Nothing here imports Ray (or pyarrow) at import time: `import rookery.scale` stays light; Ray is imported
inside the functions that need it, with an install hint when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rookery.scale.run import RunSummary, count_collection

__all__ = ["RunSummary", "count_collection"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rookery.scale import run

        return getattr(run, name)
    raise AttributeError(name)
