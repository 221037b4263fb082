"""`rookery data ...`: one module per command, registered here."""

from __future__ import annotations

import typer

from rookery.cli import data_build, data_convert, data_dots, data_synth

app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.command("synth")(data_synth.synth)
app.command("dots")(data_dots.dots)
app.command("convert")(data_convert.convert)
app.command("build")(data_build.build)
app.command("stats")(data_build.stats)
