"""The evaluation's files: metrics.json, per_photo.csv and two PNG plots.

Plots are drawn on matplotlib Figures with the Agg canvas directly (no pyplot): nothing global changes
in the process, and no display is needed.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rookery.evaluation.counting import CountingMetrics, CountingResult

METRICS_JSON, PER_PHOTO_CSV = "metrics.json", "per_photo.csv"
SCATTER_PNG, ERRORS_PNG = "counts_scatter.png", "class_errors.png"


def write_report(out: Path, result: CountingResult, payload: dict[str, Any]) -> list[Path]:
    """Write the four files into `out` (created); `payload` is the content of metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics()
    files = [out / METRICS_JSON, out / PER_PHOTO_CSV, out / SCATTER_PNG, out / ERRORS_PNG]
    files[0].write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    write_per_photo_csv(files[1], result)
    plot_counts_scatter(files[2], result)
    plot_class_errors(files[3], metrics)
    return files


def write_per_photo_csv(path: Path, result: CountingResult) -> None:
    rows = result.rows()
    columns = ["image", "split"]
    for c in result.classes:
        columns += [f"{c}_true", f"{c}_pred", f"{c}_error"]
    columns += ["total_true", "total_pred", "total_error"]
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot_counts_scatter(path: Path, result: CountingResult) -> None:
    """One panel per class: each photo's predicted count against its true count, with the line y = x."""
    from matplotlib.figure import Figure

    true, pred = result.arrays()
    metrics = result.metrics()
    n = len(result.classes)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4 * cols, 3.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for k, name in enumerate(result.classes):
        ax = axes[k]
        t, p = true[:, k], pred[:, k]
        top = max(1, int(t.max(initial=0)), int(p.max(initial=0))) * 1.05
        ax.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1, label="y = x")
        ax.scatter(t, p, s=18, alpha=0.7, color=f"C{k % 10}", edgecolors="none")
        lo = -0.03 * top  # a point at 0 stays whole
        ax.set(xlim=(lo, top), ylim=(lo, top), xlabel="true count", ylabel="predicted count", aspect="equal")
        ax.set_title(f"{name}\nMAE {metrics.mae[k]:.2f}  RMSE {metrics.rmse[k]:.2f}", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Counts per photo ({metrics.photos} photos)")
    fig.savefig(path, dpi=100)


def plot_class_errors(path: Path, metrics: CountingMetrics) -> None:
    """Per class, MAE and RMSE side by side; a line at the competition metric (mean of the RMSEs)."""
    from matplotlib.figure import Figure

    n = len(metrics.classes)
    x = np.arange(n)
    fig = Figure(figsize=(max(5.0, 1.3 * n + 2), 4), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, metrics.mae, width=0.4, label="MAE")
    ax.bar(x + 0.2, metrics.rmse, width=0.4, label="RMSE")
    ax.axhline(metrics.competition_rmse, color="k", linestyle=":", linewidth=1, label="mean RMSE")
    ax.set_xticks(x, metrics.classes, rotation=20 if n > 4 else 0)
    ax.set(ylabel="count error per photo", title=f"Counting error (mean RMSE {metrics.competition_rmse:.3f})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
