"""Per-item work across processes, with a progress bar, where one bad item never stops the batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from rookery.errors import RookeryError
from rookery.logs import track
from rookery.types import Skipped

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None, n_items: int) -> int:
    """0 or None means one per CPU core; never more processes than items."""
    if not workers:
        workers = os.cpu_count() or 1
    return max(1, min(workers, n_items))


def map_items(
    fn: Callable[[T], R],
    items: Sequence[T],
    names: Sequence[str],
    description: str,
    workers: int | None = None,
) -> Iterator[tuple[str, R | Skipped]]:
    """Yield (name, result) in input order; a RookeryError raised for an item becomes a Skipped.

    Other exceptions are bugs and propagate. `fn` must be picklable (a module-level function or a
    functools.partial of one) when more than one worker is used.
    """
    n = resolve_workers(workers, len(items))
    if n == 1:
        results: Iterator[R | Skipped] = (_call(fn, item) for item in items)
        yield from track(zip(names, results, strict=True), description, total=len(items))
        return
    with ProcessPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(_call, fn, item) for item in items]
        yield from track(
            ((name, f.result()) for name, f in zip(names, futures, strict=True)),
            description,
            total=len(items),
        )


def _call(fn: Callable[[T], R], item: T) -> R | Skipped:
    try:
        return fn(item)
    except RookeryError as e:
        return Skipped(str(item), str(e))
