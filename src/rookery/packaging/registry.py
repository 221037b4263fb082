"""The model registry: versions of one registered model, the `champion` alias and a promotion gate.

`promote` moves `champion` to a version only when it beats the current champion on the gate metric by
more than a margin; otherwise the version becomes `challenger`. `--force` skips the gate. Every move
writes its reason as a tag on the version, and the champion's history is kept as a tag on the
registered model, so `rollback` can return `champion` to the previous holder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rookery.errors import RookeryError, first_line
from rookery.packaging.client import client as client_for

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "rookery.champion_history"
REASON_TAG = "rookery.promotion"

# Gate metrics, most preferred first: (run metric, True when higher is better).
# The counting error (from `rookery evaluate`) is preferred once both versions have it; then the heatmap recipe's
# own counting error on its calibration folds' held-out photos; box mAP only between two YOLO versions.
GATE_METRICS: list[tuple[str, bool]] = [
    ("eval/competition_rmse", False),
    ("heldout/competition_rmse", False),
    ("best/mAP50-95", True),
]


@dataclass
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    aliases: list[str]
    created: int
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass
class Decision:
    version: str
    alias: str
    reason: str


def _info(client: Any, mv: Any) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        aliases=list(getattr(mv, "aliases", []) or []),
        created=int(mv.creation_timestamp or 0),
        metrics=run_metrics(client, mv.run_id),
        tags=dict(mv.tags or {}),
        source=mv.source or "",
    )


def run_metrics(store: str | Any, run_id: str | None) -> dict[str, float]:
    """The run's metrics (latest value of each); empty when there is no run or it cannot be read (a deleted run
    keeps its versions, which still work). `store`: a tracking URI or a client from packaging.client."""
    if not run_id:
        return {}
    client = client_for(store) if isinstance(store, str) else store
    try:
        return {str(k): float(v) for k, v in client.get_run(run_id).data.metrics.items()}
    except Exception as e:
        log.warning("could not read the metrics of run %s: %s", run_id, e)
        return {}


def alias_version(tracking_uri: str, name: str, alias: str) -> str:
    """The version number an alias points to now."""
    try:
        return str(client_for(tracking_uri).get_model_version_by_alias(name, alias).version)
    except Exception as e:
        raise RookeryError(
            f"cannot read alias {alias!r} of model {name!r} in the registry at {tracking_uri} ({first_line(e)})"
        ) from e


def tag(tracking_uri: str, name: str, version: str, run_id: str, key: str, value: str) -> None:
    """Set one tag on a version and on the run that made it."""
    client = client_for(tracking_uri)
    client.set_tag(run_id, key, value)
    client.set_model_version_tag(name, version, key, value)


def list_versions(tracking_uri: str, name: str) -> list[VersionInfo]:
    client = client_for(tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception as e:
        raise RookeryError(f"cannot read the registry at {tracking_uri}: {e}") from e
    # search results carry no aliases: take them from the registered model
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, v in (client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(v), []).append(alias)
    infos = [_info(client, v) for v in versions]
    for info in infos:
        info.aliases = sorted(aliases.get(info.version, []))
    return sorted(infos, key=lambda v: int(v.version))


def get_version(tracking_uri: str, name: str, version: str) -> VersionInfo:
    """A version by number, by alias (`champion`), or `latest`."""
    client = client_for(tracking_uri)
    if version == "latest":
        versions = list_versions(tracking_uri, name)
        if not versions:
            raise RookeryError(f"registered model {name!r} has no versions yet; train one with 'rookery train'")
        return versions[-1]
    try:
        mv = (
            client.get_model_version(name, version)
            if version.isdigit()
            else client.get_model_version_by_alias(name, version)
        )
    except Exception as e:
        raise RookeryError(f"model {name!r} has no version or alias {version!r}") from e
    return _info(client, mv)


def gate_metric(challenger: VersionInfo, champion: VersionInfo) -> tuple[str, bool] | None:
    for metric, higher in GATE_METRICS:
        if metric in challenger.metrics and metric in champion.metrics:
            return metric, higher
    return None


def promote(tracking_uri: str, name: str, version: str, margin: float = 0.0, force: bool = False) -> Decision:
    client = client_for(tracking_uri)
    candidate = get_version(tracking_uri, name, version)
    champion = _current(client, name)
    if champion is not None and champion.version == candidate.version:
        return Decision(candidate.version, CHAMPION, f"version {candidate.version} is already the champion")
    if champion is None:
        decision = Decision(candidate.version, CHAMPION, "first champion")
    elif force:
        decision = Decision(candidate.version, CHAMPION, f"forced over version {champion.version}")
    else:
        decision = _judge(candidate, champion, margin)
    if decision.alias == CHAMPION:
        history = _history(client, name)
        client.set_registered_model_alias(name, CHAMPION, candidate.version)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, candidate.version]))
        if CHALLENGER in candidate.aliases:
            client.delete_registered_model_alias(name, CHALLENGER)
    else:
        client.set_registered_model_alias(name, CHALLENGER, candidate.version)
    client.set_model_version_tag(name, candidate.version, REASON_TAG, decision.reason)
    return decision


def _judge(candidate: VersionInfo, champion: VersionInfo, margin: float) -> Decision:
    gate = gate_metric(candidate, champion)
    if gate is None:
        wanted = " or ".join(m for m, _ in GATE_METRICS)
        return Decision(candidate.version, CHALLENGER, f"no gate metric ({wanted}) on both versions; use --force")
    metric, higher = gate
    new, old = candidate.metrics[metric], champion.metrics[metric]
    gain = new - old if higher else old - new
    verdict = f"{metric} {new:.4f} vs champion v{champion.version} {old:.4f} (margin {margin:g})"
    if gain > 0 and gain >= margin:
        return Decision(candidate.version, CHAMPION, f"beats the champion: {verdict}")
    return Decision(candidate.version, CHALLENGER, f"does not beat the champion: {verdict}")


def rollback(tracking_uri: str, name: str) -> Decision:
    client = client_for(tracking_uri)
    history = _history(client, name)
    current = _current(client, name)
    if current is None or len(history) < 2:
        raise RookeryError(f"model {name!r} has no previous champion to roll back to")
    history = history[:-1] if history[-1] == current.version else history
    previous = history[-1]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    reason = f"rolled back from version {current.version}"
    client.set_model_version_tag(name, previous, REASON_TAG, reason)
    return Decision(previous, CHAMPION, reason)


def _current(client: Any, name: str) -> VersionInfo | None:
    try:
        return _info(client, client.get_model_version_by_alias(name, CHAMPION))
    except Exception:  # no alias yet (MLflow raises RestException / MlflowException)
        return None


def _history(client: Any, name: str) -> list[str]:
    try:
        tags = client.get_registered_model(name).tags or {}
    except Exception as e:
        raise RookeryError(f"registered model {name!r} not found; train one with 'rookery train'") from e
    try:
        return [str(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]
    except json.JSONDecodeError:
        return []
