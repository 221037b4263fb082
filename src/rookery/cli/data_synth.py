"""`rookery data synth` (being written)."""

from rookery.errors import RookeryError


def synth() -> None:
    """(being written)"""
    raise RookeryError("not written yet")
