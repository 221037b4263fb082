"""The evaluation's files: metrics.json, per_photo.csv, two PNG plots and, when the photos' points are known,
confusion.csv and confusion.png (detections matched to true animals, confusion.py).

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

from rookery.evaluation.confusion import Confusion
from rookery.evaluation.counting import CountingMetrics, CountingResult

METRICS_JSON, PER_PHOTO_CSV = "metrics.json", "per_photo.csv"
SCATTER_PNG, ERRORS_PNG = "counts_scatter.png", "class_errors.png"
CONFUSION_CSV, CONFUSION_PNG = "confusion.csv", "confusion.png"


def write_report(out: Path, result: CountingResult, payload: dict[str, Any]) -> list[Path]:
    """Write the files into `out` (created); `payload` is the content of metrics.json. The confusion files
    are written when the result has a confusion matrix (photos with known points)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics()
    files = [out / METRICS_JSON, out / PER_PHOTO_CSV, out / SCATTER_PNG, out / ERRORS_PNG]
    files[0].write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
    write_per_photo_csv(files[1], result)
    plot_counts_scatter(files[2], result)
    plot_class_errors(files[3], metrics)
    if (confusion := result.confusion()) is not None:
        files += [out / CONFUSION_CSV, out / CONFUSION_PNG]
        write_confusion_csv(files[4], confusion)
        plot_confusion(files[5], confusion)
    return files


def write_per_photo_csv(path: Path, result: CountingResult) -> None:
    """One row per photo (CountingResult.rows); the interval and matching columns where every photo has them."""
    rows = result.rows()
    columns = ["image", "split"]
    for c in result.classes:
        columns += [f"{c}_true", f"{c}_pred", f"{c}_error"]
    columns += ["total_true", "total_pred", "total_error"]
    if result.has_intervals:
        for c in [*result.classes, "total"]:
            columns += [f"{c}_interval_lo", f"{c}_interval_hi"]
    if result.confusions and all(m is not None for m in result.confusions):
        columns += ["matched", "wrong_class", "missed", "extra"]
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_confusion_csv(path: Path, confusion: Confusion) -> None:
    """The matrix with its labels: a header of predicted classes and "missed", a row per true class and
    "extra", the first column naming the row."""
    rows, cols = confusion.labels()
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *cols])
        for label, values in zip(rows, confusion.matrix.tolist(), strict=True):
            writer.writerow([label, *values])


def plot_confusion(path: Path, confusion: Confusion) -> None:
    """A heatmap of the matrix, each cell coloured by its share of its row (so a rare class's confusion shows
    as plainly as a common one's) and labelled with its count; the corner (extra, missed) is blank."""
    from matplotlib.figure import Figure

    rows, cols = confusion.labels()
    m = confusion.matrix.astype(np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    n = len(rows)
    fig = Figure(figsize=(1.1 * n + 3, 0.9 * n + 2), layout="constrained")
    ax = fig.subplots()
    corner = np.zeros(share.shape, dtype=bool)
    corner[-1, -1] = True
    masked = np.ma.masked_array(share, mask=corner)
    image = ax.imshow(masked, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if i == n - 1 and j == n - 1:
                continue
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=9)  # fmt: skip
    ax.set_xticks(range(n), cols, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), rows)
    ax.axhline(n - 1.5, color="0.3", linewidth=1)
    ax.axvline(n - 1.5, color="0.3", linewidth=1)
    frac = confusion.fractions()
    matched = "n/a" if frac["matched_fraction"] is None else f"{frac['matched_fraction']:.1%}"
    title = f"Detections matched to true points ({confusion.photos} photos; {matched} of the animals found)"
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="share of the row")
    fig.savefig(path, dpi=100)


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


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
