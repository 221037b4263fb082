"""The `rookery` command line: thin wrappers that parse options, call the library and map errors.

Domain errors (RookeryError) print one line and exit with status 1; usage errors exit with 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from rookery import __version__
from rookery.errors import RookeryError
from rookery.logs import console, setup_logging


class _RookeryGroup(TyperGroup):
    """Turns a RookeryError raised anywhere below into one line on stderr and exit status 1."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except RookeryError as e:
            # escaped: messages quote things like pip install 'rookery[train]', which rich would take for markup
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from e


app = typer.Typer(
    cls=_RookeryGroup,
    name="rookery",
    help="Count many small, similar objects in large photos: dots -> data set -> model -> counts -> service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rookery {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """rookery: from dotted survey photos to a deployed, versioned counting service.

    Configuration comes from ROOKERY_* environment variables or a .env file; by default everything
    lives under ./.rookery (see the README).
    """
    setup_logging(verbose)
    from rookery.offline import ensure_offline

    ensure_offline()


def _register() -> None:
    from rookery.cli import data, demo, evaluate, model, predict, serve, train

    app.add_typer(data.app, name="data", help="Find dots, convert annotations, build and inspect tiled data sets.")
    app.command("train")(train.train)
    app.command("predict")(predict.predict)
    app.command("evaluate")(evaluate.evaluate)
    app.add_typer(model.app, name="model", help="List, show, promote and roll back registered model versions.")
    app.command("serve")(serve.serve)
    app.command("demo", help=demo.demo.__doc__)(demo.demo)


_register()
