"""`rookery demo` (being written)."""

from rookery.errors import RookeryError


def demo() -> None:
    """Run the whole pipeline on a synthetic survey."""
    raise RookeryError("not written yet")
