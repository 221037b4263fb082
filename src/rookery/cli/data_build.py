"""`rookery data build` and `rookery data stats` (being written)."""

from rookery.errors import RookeryError


def build() -> None:
    """(being written)"""
    raise RookeryError("not written yet")


def stats() -> None:
    """(being written)"""
    raise RookeryError("not written yet")
