"""Promotion gate, rollback and --force with real versions in a real (SQLite) registry.

The versions hold a trivial pyfunc model: the gate judges run metrics, not the model's content, so the
metrics are set exactly here instead of depending on what a 1-epoch training happens to reach.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rookery.cli import app
from rookery.config import get_settings
from rookery.errors import RookeryError
from rookery.packaging import registry

runner = CliRunner()


def _version_with(metrics: dict[str, float]) -> str:
    import mlflow

    from rookery.packaging.client import configure_client, experiment_id

    s = get_settings()
    configure_client(s.tracking_uri)

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    with mlflow.start_run(experiment_id=experiment_id("gate", s.tracking_uri, s.artifact_root)):
        mlflow.log_metrics(metrics)
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=s.model_name)
    return str(info.registered_model_version)


def _aliases() -> dict[str, list[str]]:
    s = get_settings()
    return {v.version: v.aliases for v in registry.list_versions(s.tracking_uri, s.model_name)}


def test_gate_promotes_only_a_better_version_and_rollback_returns():
    s = get_settings()
    v1 = _version_with({"best/mAP50-95": 0.40})
    v2 = _version_with({"best/mAP50-95": 0.35})  # worse
    v3 = _version_with({"best/mAP50-95": 0.46})  # better by 0.06

    assert registry.promote(s.tracking_uri, s.model_name, v1).reason == "first champion"
    worse = registry.promote(s.tracking_uri, s.model_name, v2)
    assert worse.alias == "challenger" and "does not beat" in worse.reason
    assert _aliases()[v1] == ["champion"] and _aliases()[v2] == ["challenger"]

    # a margin larger than the gain keeps the champion
    assert registry.promote(s.tracking_uri, s.model_name, v3, margin=0.1).alias == "challenger"
    better = registry.promote(s.tracking_uri, s.model_name, v3, margin=0.05)
    assert better.alias == "champion" and "beats the champion" in better.reason
    assert _aliases()[v3] == ["champion"]
    assert registry.get_version(s.tracking_uri, s.model_name, v3).tags["rookery.promotion"] == better.reason

    back = registry.rollback(s.tracking_uri, s.model_name)
    assert back.version == v1 and _aliases()[v1] == ["champion"]


def test_force_skips_the_gate_and_counting_error_is_preferred():
    s = get_settings()
    v1 = _version_with({"best/mAP50-95": 0.5, "eval/competition_rmse": 3.0})
    v2 = _version_with({"best/mAP50-95": 0.9, "eval/competition_rmse": 4.0})  # better mAP, worse counts
    registry.promote(s.tracking_uri, s.model_name, v1)
    judged = registry.promote(s.tracking_uri, s.model_name, v2)
    assert judged.alias == "challenger" and "eval/competition_rmse" in judged.reason
    forced = registry.promote(s.tracking_uri, s.model_name, v2, force=True)
    assert forced.alias == "champion" and "forced" in forced.reason


def test_cli_promote_list_rollback():
    _version_with({"best/mAP50-95": 0.1})
    _version_with({"best/mAP50-95": 0.2})
    assert "version 1 -> champion" in runner.invoke(app, ["model", "promote", "1"]).output
    assert "version 2 -> champion" in runner.invoke(app, ["model", "promote", "latest"]).output
    listing = runner.invoke(app, ["model", "list"])
    assert listing.exit_code == 0 and "champion" in listing.output
    assert "version 1 -> champion" in runner.invoke(app, ["model", "rollback"]).output
    # no earlier champion left: one clear line, exit 1
    result = runner.invoke(app, ["model", "rollback"])
    assert result.exit_code == 1 and "no previous champion" in result.output


def test_unknown_model_is_a_clear_error():
    s = get_settings()
    with pytest.raises(RookeryError, match="no version or alias"):
        registry.get_version(s.tracking_uri, "nope", "champion")
