"""`rookery data dots` (being written)."""

from rookery.errors import RookeryError


def dots() -> None:
    """(being written)"""
    raise RookeryError("not written yet")
