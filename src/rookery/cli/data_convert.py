"""`rookery data convert` (being written)."""

from rookery.errors import RookeryError


def convert() -> None:
    """(being written)"""
    raise RookeryError("not written yet")
