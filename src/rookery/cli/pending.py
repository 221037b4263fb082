"""Command groups whose implementation lands with later work (see the README's roadmap).

They are listed in `rookery --help` so the shape of the tool is visible, and each says plainly that it
is not available in this version instead of pretending to work.
"""

from __future__ import annotations

import typer

from rookery.errors import RookeryError

PENDING = {
    "serve": "Serve the REST API and the web page.",
}


def register(app: typer.Typer) -> None:
    for name, help_text in PENDING.items():
        app.command(
            name,
            help=f"{help_text} [not available in this version]",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_make(name))


def _make(name: str):
    def command() -> None:
        raise RookeryError(f"'rookery {name}' is not available in rookery yet; see the README's roadmap")

    command.__name__ = name
    return command
