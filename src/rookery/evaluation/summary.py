"""The evaluation in one JSON document (`rookery evaluate --json PATH`): per photo and overall.

    {"model": {"uri", "version", ...},
     "classes": [...], "interval_level": 0.9,
     "photos": [{"name", "split", "classes": {c: {"true", "predicted", "interval": [lo, hi]}},
                 "total": {"true", "predicted", "interval": [lo, hi], "error_pct"}}, ...],
     "overall": {"photos", "competition_rmse", "classes": {c: {"true", "predicted", "mae", "rmse",
                 "interval_coverage"}}, "total_mae", "total_rmse", "total_error_pct": {photo: pct},
                 "mean_abs_total_error_pct", "interval_coverage", "confusion", "confusion_note"},
     "skipped": [{"item", "reason"}]}

A photo's total interval is the sum of its class lows and highs (counting.total_interval: conservative).
`error_pct` is 100 · (predicted − true) / true of the photo's total, null for a photo without animals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rookery.evaluation.counting import total_interval
from rookery.evaluation.intervals import total_error_pct
from rookery.evaluation.report import json_default

if TYPE_CHECKING:
    from rookery.evaluation.evaluate import Evaluation


def summary(ev: Evaluation) -> dict[str, Any]:
    """The --json document of an evaluation (see the module docstring)."""
    result, metrics = ev.counting, ev.metrics
    classes = list(result.classes)
    true, pred = result.arrays()
    pct = total_error_pct(true, pred)
    photos = []
    for k, name in enumerate(result.images):
        iv = result.intervals[k] if k < len(result.intervals) else None
        per_class = {}
        for c, cls in enumerate(classes):
            per_class[cls] = {
                "true": int(true[k, c]),
                "predicted": int(pred[k, c]),
                "interval": None if iv is None else [int(iv[c, 0]), int(iv[c, 1])],
            }
        photos.append(
            {
                "name": name,
                "split": result.splits[k],
                "classes": per_class,
                "total": {
                    "true": int(true[k].sum()),
                    "predicted": int(pred[k].sum()),
                    "interval": None if iv is None else list(total_interval(iv)),
                    "error_pct": pct[k],
                },
            }
        )
    coverage = (ev.intervals or {}).get("classes", {})
    known = [abs(p) for p in pct if p is not None]
    overall = {
        "photos": metrics.photos,
        "competition_rmse": metrics.competition_rmse,
        "classes": {
            c: {"true": t, "predicted": p, "mae": a, "rmse": r, "interval_coverage": coverage.get(c)}
            for c, t, p, a, r in zip(
                classes, metrics.true_total, metrics.pred_total, metrics.mae, metrics.rmse, strict=True
            )
        },
        "total_mae": metrics.total_mae,
        "total_rmse": metrics.total_rmse,
        "total_error_pct": dict(zip(result.images, pct, strict=True)),
        "mean_abs_total_error_pct": sum(known) / len(known) if known else None,
        "interval_coverage": (ev.intervals or {}).get("coverage"),
        "confusion": None if ev.confusion is None else ev.confusion.to_dict(),
        "confusion_note": ev.confusion_note,
    }
    info = ev.info
    model = {
        "uri": None if info is None else info.uri,
        "version": None if info is None else info.version,
        "name": None if info is None else info.name,
        "run_id": None if info is None else info.run_id,
        "backend": ev.payload.get("model", {}).get("backend"),
    }
    return {
        "created": ev.payload.get("created"),
        "model": model,
        "classes": classes,
        "interval_level": result.level,
        "photos": photos,
        "overall": overall,
        "skipped": [{"item": s.item, "reason": s.reason} for s in result.skipped],
    }


def write_summary(path: Path, ev: Evaluation) -> Path:
    """Write summary(ev) as JSON to `path` (its folder created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(ev), indent=2, default=json_default) + "\n")
    return path
