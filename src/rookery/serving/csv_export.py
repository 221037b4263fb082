"""CSV downloads of one prediction, written by the server with the csv module (one writer for every CSV the
service gives; the page downloads these instead of building its own).

Cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) get a
leading apostrophe (CSV injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from rookery.serving.store import StoredPrediction

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A text cell that is never run as a formula; other values as they are."""
    if isinstance(value, str) and value[:1] in _FORMULA_START:
        return "'" + value
    return value


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buffer.getvalue()


def counts_csv(stored: StoredPrediction) -> str:
    """image,<classes>,total,<class>_lo,<class>_hi,...,total_lo,total_hi: the columns of `rookery predict`'s
    counts.csv (empty interval cells for a prediction stored before intervals existed)."""
    record = stored.prediction
    names = list(record.class_names)
    iv = record.intervals
    if iv is None:
        bounds: list[Any] = [""] * (2 * len(names) + 2)
    else:
        bounds = [v for n in names for v in iv.classes.get(n, ("", ""))] + list(iv.total)
    header = ["image", *names, "total", *[f"{n}_{end}" for n in (*names, "total") for end in ("lo", "hi")]]
    row = [record.image, *record.counts.values(), record.total, *bounds]
    return csv_text([header, row])


def detections_csv(stored: StoredPrediction) -> str:
    """image,class,score,x1,y1,x2,y2: one row per detection."""
    record = stored.prediction
    rows: list[Sequence[Any]] = [["image", "class", "score", "x1", "y1", "x2", "y2"]]
    for d in record.detections():
        box = [f"{float(d[k]):.1f}" for k in ("x1", "y1", "x2", "y2")]  # type: ignore[arg-type]
        rows.append([record.image, d["class_name"], f"{float(d['score']):.4f}", *box])  # type: ignore[arg-type]
    return csv_text(rows)
