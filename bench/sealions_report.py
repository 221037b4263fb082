"""The tables and the last line of bench/sealions.py."""

from __future__ import annotations

from typing import Any

import numpy as np


def _coverage(photos: list[dict[str, Any]]) -> float:
    """rookery's one coverage rule (rookery.inference.calibration.interval_coverage) on the held-out photos."""
    from rookery.inference.calibration import interval_coverage

    intervals = np.stack([np.column_stack([p["lo"], p["hi"]]) for p in photos])
    true, pred = np.array([p["true"] for p in photos]), np.array([p["pred"] for p in photos])
    overall, _ = interval_coverage(true, pred, intervals)
    return float("nan") if overall is None else overall


def report(results: dict[str, list[dict[str, Any]]], names: list[str]) -> float:
    from rookery.evaluation.counting import counting_metrics

    short = [n.replace("_", " ")[:10] for n in names]
    overall: dict[str, float] = {}
    truth: np.ndarray | None = None
    coverage: dict[str, float] = {}
    for method, folds in results.items():
        photos = sorted((p for f in folds for p in f["photos"]), key=lambda p: (len(p["name"]), p["name"]))
        if not photos:
            continue
        print(f"\n{method}: per held-out photo, predicted/true per class [90 % interval], total and its % error")
        for k, f in enumerate(folds):
            extra = {key: f[key] for key in ("steps", "epochs", "conf", "inner_coverage") if f.get(key) is not None}
            print(f"  fold {k}: {round(f['seconds'])} s; " + ", ".join(f"{a}={b}" for a, b in extra.items()))
        header = f"{'photo':<6}" + "".join(f"{n:>19}" for n in short) + f"{'total':>12}{'error':>8}"
        print(header)
        print("-" * len(header))
        for p in photos:
            cells = "".join(
                f"{f'{n}/{t} [{lo}-{hi}]':>19}"
                for n, t, lo, hi in zip(p["pred"], p["true"], p["lo"], p["hi"], strict=True)
            )
            tt, tp = sum(p["true"]), sum(p["pred"])
            err = f"{100 * (tp - tt) / tt:+.0f}%" if tt else "-"
            print(f"{p['name']:<6}{cells}{f'{tp}/{tt}':>12}{err:>8}")
        true = np.array([p["true"] for p in photos])
        pred = np.array([p["pred"] for p in photos])
        m = counting_metrics(true, pred, names)
        print(f"{'RMSE':<6}" + "".join(f"{v:>19.2f}" for v in m.rmse) + f"{m.total_rmse:>12.2f}")
        overall[method] = m.competition_rmse
        coverage[method] = _coverage(photos)
        truth = true
        print(f"competition metric {m.competition_rmse:.3f}; interval coverage {coverage[method]:.2f}")
    if truth is None:
        print("no results")
        return float("nan")
    zero = counting_metrics(truth, np.zeros_like(truth), names).competition_rmse
    print("\ncompetition metric (mean over classes of the per-class RMSE over the held-out photos), lower is better:")
    for method, value in overall.items():
        print(f"  {method:<12} {value:8.3f}   interval coverage {coverage[method]:.2f}")
    print(f"  {'counting 0':<12} {zero:8.3f}")
    best = overall.get("heatmap", float("nan"))
    whole = overall.get("whole photo", float("nan"))
    ratio_whole = best / whole if whole else float("nan")
    ratio_zero = best / zero if zero else float("nan")
    print(
        f"loo_ratio_vs_whole={ratio_whole:.3f} loo_ratio_vs_zero={ratio_zero:.3f} "
        f"coverage90={coverage.get('heatmap', float('nan')):.3f}"
    )
    return ratio_whole
