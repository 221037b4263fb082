"""`rookery model list|show|promote|rollback`: the registry and its `champion` alias."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rookery.logs import console

app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

NameOpt = Annotated[str | None, typer.Option("--name", help="Registered model name [default: ROOKERY_MODEL_NAME].")]
_KEY_METRICS = ("best/mAP50", "best/mAP50-95", "eval/competition_rmse")


def _name(name: str | None) -> tuple[str, str]:
    from rookery.config import get_settings

    s = get_settings()
    return s.tracking_uri, name or s.model_name


@app.command("list")
def list_(name: NameOpt = None) -> None:
    """List the versions with their aliases and key metrics."""
    from rookery.packaging.registry import list_versions

    uri, model = _name(name)
    table = Table(title=f"{model} @ {uri}")
    for col in ("version", "aliases", "run", *_KEY_METRICS, "promotion"):
        table.add_column(col)
    for v in list_versions(uri, model):
        table.add_row(
            v.version,
            ",".join(v.aliases),
            (v.run_id or "")[:8],
            *(f"{v.metrics[m]:.4f}" if m in v.metrics else "" for m in _KEY_METRICS),
            v.tags.get("rookery.promotion", ""),
        )
    console.print(table)


@app.command()
def show(
    version: Annotated[str, typer.Argument(help="Version number, alias (champion) or 'latest'.")] = "champion",
    name: NameOpt = None,
) -> None:
    """Show one version: run, source, aliases, tags and metrics."""
    from rookery.packaging.registry import get_version

    uri, model = _name(name)
    v = get_version(uri, model, version)
    typer.echo(f"{v.name} version {v.version}  aliases: {', '.join(v.aliases) or '-'}")
    typer.echo(f"run: {v.run_id}\nsource: {v.source}")
    for k, val in sorted(v.tags.items()):
        typer.echo(f"tag {k}: {val}")
    for k, m in sorted(v.metrics.items()):
        typer.echo(f"metric {k}: {m:.6g}")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version number or 'latest'.")] = "latest",
    margin: Annotated[float, typer.Option(help="How much it must beat the champion on the gate metric.")] = 0.0,
    force: Annotated[bool, typer.Option(help="Make it champion without the gate.")] = False,
    name: NameOpt = None,
) -> None:
    """Make a version `champion` if it beats the current one on the gate metric, else `challenger`.

    The gate metric is the counting error (eval/competition_rmse, lower is better) when both versions have
    it, else best/mAP50-95 (higher is better). The reason is written as a tag on the version.
    """
    from rookery.packaging.registry import promote as do_promote

    uri, model = _name(name)
    d = do_promote(uri, model, version, margin=margin, force=force)
    typer.echo(f"{model} version {d.version} -> {d.alias}: {d.reason}")


@app.command()
def rollback(name: NameOpt = None) -> None:
    """Return `champion` to the version that held it before."""
    from rookery.packaging.registry import rollback as do_rollback

    uri, model = _name(name)
    d = do_rollback(uri, model)
    typer.echo(f"{model} version {d.version} -> {d.alias}: {d.reason}")
