"""rookery: count many small, similar objects in large photos."""

__version__ = "0.1.0"
