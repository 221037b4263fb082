"""Option parsers shared by several commands."""

from __future__ import annotations

import re

import typer


def parse_size(value: str) -> tuple[int, int]:
    """'4992x3328' -> (4992, 3328); rejects anything that is not two positive integers."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value or "")
    if not m:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 4992x3328, got {value!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise typer.BadParameter(f"width and height must be positive, got {value!r}")
    return w, h


def parse_split(value: str) -> tuple[float, float, float]:
    """'0.7,0.2,0.1' -> fractions of source photos for train, val and test."""
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError as e:
        raise typer.BadParameter(f"expected three fractions such as 0.7,0.2,0.1, got {value!r}") from e
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6 or parts[0] <= 0:
        raise typer.BadParameter(f"expected three non-negative fractions summing to 1 (train > 0), got {value!r}")
    return parts
