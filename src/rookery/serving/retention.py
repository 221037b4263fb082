"""Retention of the history's stored photos: predictions older than ROOKERY_RETENTION_DAYS, and the oldest ones
while the stored files take more than ROOKERY_RETENTION_GB, are deleted (row and files) by a periodic task.

Both are off (0) by default: the history is kept until someone deletes it. `prune` is safe to run from several
workers at once (a prediction already deleted by another is skipped).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from rookery.serving.store import PredictionStore

log = logging.getLogger(__name__)


def _size(folder: Path) -> int:
    try:
        return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())
    except FileNotFoundError:
        return 0


def prune(store: PredictionStore, max_age_days: float = 0.0, max_bytes: int = 0) -> int:
    """Delete predictions past the age limit, then the oldest until the files fit in max_bytes; how many went."""
    if max_age_days <= 0 and max_bytes <= 0:
        return 0
    oldest_first = [(r.id, r.created_at) for r in store.iter_all()][::-1]
    cutoff = datetime.now(UTC) - timedelta(days=max_age_days) if max_age_days > 0 else None
    sizes = {pid: _size(store.files_dir / pid) for pid, _ in oldest_first} if max_bytes > 0 else {}
    total = sum(sizes.values())
    deleted = 0
    for pid, created in oldest_first:
        too_old = cutoff is not None and created < cutoff
        too_big = max_bytes > 0 and total > max_bytes
        if not (too_old or too_big):
            break  # the rest are newer, and the files fit
        if store.delete(pid):
            deleted += 1
        total -= sizes.get(pid, 0)
    if deleted:
        log.info("retention: deleted %d prediction(s) and their files", deleted)
    return deleted


async def retention_loop(store: PredictionStore, max_age_days: float, max_gb: float, every_s: float) -> None:
    """Prune now and then every `every_s` seconds, until cancelled (at shutdown)."""
    max_bytes = int(max_gb * 1e9)
    while True:
        try:
            await run_in_threadpool(prune, store, max_age_days, max_bytes)
        except Exception:  # a database hiccup: try again next time, never take the server down
            log.exception("retention: pruning the history failed")
        await asyncio.sleep(every_s)
