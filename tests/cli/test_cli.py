"""The top-level CLI: help, version, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rookery import __version__
from rookery.cli import app

runner = CliRunner()


def test_help_lists_the_groups():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("data", "train", "evaluate", "model", "predict", "serve", "demo"):
        assert group in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rookery {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-option"],  # unknown top-level option
        ["data", "synth", "--no-such-option"],  # unknown option of a command
        ["no-such-command"],  # unknown command
    ],
)
def test_usage_errors_exit_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2


def test_console_script_maps_domain_error_to_one_line_and_status_1():
    # The installed entry point, not CliRunner: what a user sees.
    exe = [sys.executable, "-m", "rookery"]
    proc = subprocess.run([*exe, "serve"], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
