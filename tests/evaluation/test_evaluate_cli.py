"""`rookery evaluate` end to end: a real tiny model from the MLflow registry, a real data set, files, the
run's metrics and artifacts read back with MlflowClient, and the promotion gate on the counting error."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from rookery.data.manifest import Manifest

runner = CliRunner()
FILES = {"metrics.json", "per_photo.csv", "counts_scatter.png", "class_errors.png"}


def _invoke(app, *args: str):
    result = runner.invoke(app, ["evaluate", *args])
    return result


def _check_files(out: Path) -> tuple[dict, list[dict]]:
    assert {p.name for p in out.iterdir()} >= FILES
    for png in ("counts_scatter.png", "class_errors.png"):
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 300
        assert image.std() > 5  # something is drawn
    with (out / "per_photo.csv").open() as f:
        rows = list(csv.DictReader(f))
    return json.loads((out / "metrics.json").read_text()), rows


def test_evaluate_registered_model_logs_into_its_run(cli_app, trained_home, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from rookery.config import get_settings

    t = trained_home
    out = tmp_path / "eval"
    result = _invoke(
        cli_app, "--model", f"models:/rookery/{t.version}", "--data", str(t.dataset), "--split", "all",
        "--out", str(out), "--device", "cpu", "--conf", "0.001",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "competition metric" in result.output and "mAP50-95" in result.output
    metrics, rows = _check_files(out)

    # the ground truth is the manifest's, photo by photo, and the metrics are those of per_photo.csv
    manifest = Manifest.load(t.dataset)
    assert sorted(r["image"] for r in rows) == sorted(p.image for p in manifest.photos)
    truth = {p.image: p.counts_in_mask for p in manifest.photos}
    for r in rows:
        assert {c: int(r[f"{c}_true"]) for c in manifest.classes} == truth[r["image"]]
    per_class_rmse = [
        math.sqrt(sum((int(r[f"{c}_pred"]) - int(r[f"{c}_true"])) ** 2 for r in rows) / len(rows))
        for c in manifest.classes
    ]
    assert sum(int(r["total_pred"]) for r in rows) > 0  # conf 0.001: the untrained model guesses
    counting = metrics["counting"]
    assert counting["competition_rmse"] == pytest.approx(sum(per_class_rmse) / len(per_class_rmse))
    assert counting["photos"] == 4 and metrics["model"]["run_id"] == t.run_id
    assert metrics["detection"]["tiles"] == sum(manifest.tiles.values())
    assert 0.0 <= metrics["detection"]["map50_95"] <= metrics["detection"]["map50"] <= 1.0

    # logged into the model's run: metrics with the values of metrics.json, files under evaluation/
    client = MlflowClient(get_settings().tracking_uri)
    run = client.get_run(t.run_id)
    assert run.data.metrics["eval/competition_rmse"] == pytest.approx(counting["competition_rmse"])
    for c in manifest.classes:
        assert run.data.metrics[f"eval/rmse/{c}"] == pytest.approx(counting["classes"][c]["rmse"])
        assert run.data.metrics[f"eval/mae/{c}"] == pytest.approx(counting["classes"][c]["mae"])
    assert run.data.metrics["eval/mAP50-95"] == pytest.approx(metrics["detection"]["map50_95"])
    assert run.data.tags["rookery.eval.split"] == "all"
    assert run.info.status == "FINISHED"  # the training run is written to, not restarted
    assert {Path(a.path).name for a in client.list_artifacts(t.run_id, "evaluation")} == FILES


def test_promotion_gate_uses_the_counting_error(cli_app, trained_home, tmp_path: Path) -> None:
    """Version 2 shares version 1's files but belongs to a second run whose training mAP is no better than
    v1's, so only the counting error can promote it. v1 is evaluated with a threshold that the barely
    trained model never reaches (it counts 0), v2 with one that keeps its guesses; the gate must follow
    whichever counts better (here v2: RMSE 4 against 10 on the val photo)."""
    from mlflow.tracking import MlflowClient

    from rookery.config import get_settings

    t = trained_home
    uri = get_settings().tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    v1 = client.get_model_version("rookery", t.version)
    run2 = client.create_run(client.get_run(t.run_id).info.experiment_id, run_name="same-weights").info.run_id
    client.log_metric(run2, "best/mAP50-95", client.get_run(t.run_id).data.metrics["best/mAP50-95"])
    client.set_terminated(run2)
    v2 = str(client.create_model_version("rookery", source=v1.source, run_id=run2).version)

    rmse = {}
    for version, conf in ((t.version, "0.5"), (v2, "0.001")):
        out = tmp_path / f"v{version}"
        result = _invoke(
            cli_app, "--model", f"models:/rookery/{version}", "--data", str(t.dataset), "--split", "val",
            "--out", str(out), "--device", "cpu", "--conf", conf, "--no-map",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        rmse[version] = json.loads((out / "metrics.json").read_text())["counting"]["competition_rmse"]

    from rookery.cli import app

    assert runner.invoke(app, ["model", "promote", t.version, "--force"]).exit_code == 0
    result = runner.invoke(app, ["model", "promote", v2])
    assert result.exit_code == 0, result.output
    verdict = "champion: beats" if rmse[v2] < rmse[t.version] else "challenger: does not beat"
    assert f"version {v2} -> {verdict} the champion: eval/competition_rmse" in result.output, (rmse, result.output)


def test_evaluate_points_with_a_pt_file_and_a_corrupt_photo(cli_app, trained, tmp_path: Path) -> None:
    # a plain .pt file: no run to log into; a corrupt photo is reported and the others evaluated
    photos = tmp_path / "photos"
    shutil.copytree(trained.survey / "train", photos)
    victim = sorted(photos.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])
    out = tmp_path / "eval"
    result = _invoke(
        cli_app, "--model", str(trained.best), "--points", str(trained.survey / "points.csv"),
        "--images", str(photos), "--masks", str(trained.survey / "masks"),
        "--classes", str(trained.survey / "classes.yaml"), "--out", str(out), "--device", "cpu", "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"skipped {victim.stem}" in " ".join(result.output.split())
    metrics, rows = _check_files(out)
    assert metrics["counting"]["photos"] == 3 and len(rows) == 3
    assert [s["item"] for s in metrics["skipped"]] == [victim.stem]
    assert metrics["detection"] is None and "--data" in metrics["detection_note"]
    assert "logged into" not in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "either --data"),  # neither --data nor --points
        (["--points", "p.csv"], 2, "--points needs --images"),  # --points alone
        (["--data", "DS", "--split", "dev"], 2, "expected one of test, val, train, all"),  # unknown split
        (["--data", "DS", "--split", "test", "--model", "nowhere.pt"], 1, "does not exist"),  # missing model file
        (["--data", "DS", "--animal-px", "0"], 2, "must be a positive number of pixels"),  # no animal is 0 px long
    ],
)
def test_evaluate_bad_usage(cli_app, trained, args: list[str], code: int, message: str) -> None:
    args = [str(trained.dataset) if a == "DS" else a for a in args]
    result = _invoke(cli_app, *args)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())


def test_evaluate_refuses_a_model_of_other_classes(cli_app, trained, square_survey, tmp_path: Path) -> None:
    # the tiny model knows the synthetic classes; the square survey has red and green
    result = _invoke(
        cli_app, "--model", str(trained.best), "--points", str(square_survey.points),
        "--images", str(square_survey.images), "--classes", str(square_survey.classes),
        "--out", str(tmp_path / "o"), "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "differ from the data's ['red', 'green']" in " ".join(result.output.split())


def test_evaluate_points_json_intervals_and_confusion(cli_app, trained, tmp_path: Path) -> None:
    # the public form: --model --points --images --masks --json, the classes taken from the model
    survey, out, report = trained.survey, tmp_path / "eval", tmp_path / "reports" / "out.json"
    result = _invoke(
        cli_app, "--model", str(trained.best), "--points", str(survey / "points.csv"), "--images",
        str(survey / "train"), "--masks", str(survey / "masks"), "--out", str(out), "--json", str(report),
        "--device", "cpu", "--workers", "1", "--conf", "0.001", "--animal-px", "40",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "Detections matched to true animals" in flat and "Per photo: true / predicted [interval]" in flat
    metrics, rows = _check_files(out)
    assert metrics["model"]["options"]["animal_px"] == 40.0  # --animal-px reached the predictor

    doc = json.loads(report.read_text())
    classes = doc["classes"]
    assert classes == metrics["model"]["class_names"] and len(classes) == 2
    assert doc["model"]["uri"] == str(trained.best) and doc["model"]["version"] is None
    assert doc["interval_level"] == 0.9 and len(doc["photos"]) == len(rows) == 4
    for photo, row in zip(doc["photos"], rows, strict=True):
        assert photo["name"] == row["image"] and set(photo["classes"]) == set(classes)
        for c, v in photo["classes"].items():
            lo, hi = v["interval"]
            assert lo <= v["predicted"] <= hi  # each interval holds its predicted count
            assert (v["true"], v["predicted"], lo, hi) == tuple(
                int(row[k]) for k in (f"{c}_true", f"{c}_pred", f"{c}_interval_lo", f"{c}_interval_hi")
            )
        total = photo["total"]
        assert total["true"] == sum(v["true"] for v in photo["classes"].values())
        assert total["predicted"] == sum(v["predicted"] for v in photo["classes"].values())
        # the total's interval is the sum of the class lows and highs
        assert total["interval"] == [sum(v["interval"][k] for v in photo["classes"].values()) for k in (0, 1)]
        pct = None if total["true"] == 0 else 100 * (total["predicted"] - total["true"]) / total["true"]
        assert total["error_pct"] == pytest.approx(pct) and doc["overall"]["total_error_pct"][photo["name"]] == pct

    overall = doc["overall"]
    rmses = [overall["classes"][c]["rmse"] for c in classes]
    assert overall["competition_rmse"] == pytest.approx(sum(rmses) / len(rmses))
    assert overall["competition_rmse"] == pytest.approx(metrics["counting"]["competition_rmse"])
    for c in classes:
        assert overall["classes"][c]["mae"] == pytest.approx(metrics["counting"]["classes"][c]["mae"])
    # coverage: the share of (photo, class) pairs with something true or predicted whose truth is inside
    pairs = [v for p in doc["photos"] for v in p["classes"].values() if v["true"] or v["predicted"]]
    inside = sum(v["interval"][0] <= v["true"] <= v["interval"][1] for v in pairs)
    assert overall["interval_coverage"] == pytest.approx(inside / len(pairs))

    # the confusion matrix: margins are the true and predicted counts, also in metrics.json and confusion.csv
    conf = overall["confusion"]
    m = conf["matrix"]
    assert conf["rows"] == [*classes, "extra"] and conf["columns"] == [*classes, "missed"]
    for k, c in enumerate(classes):
        assert sum(m[k]) == sum(p["classes"][c]["true"] for p in doc["photos"])
        assert sum(row[k] for row in m) == sum(p["classes"][c]["predicted"] for p in doc["photos"])
    assert m[-1][-1] == 0 and metrics["confusion"]["matrix"] == m
    with (out / "confusion.csv").open() as f:
        assert [[int(v) for v in r[1:]] for r in list(csv.reader(f))[1:]] == m
    assert cv2.imread(str(out / "confusion.png")) is not None
    assert {"matched", "wrong_class", "missed", "extra"} <= set(rows[0])


def test_evaluate_data_set_skips_the_confusion_with_a_note(cli_app, trained, tmp_path: Path) -> None:
    # a built data set records counts, not points: intervals yes, confusion no (and said why)
    out, report = tmp_path / "eval", tmp_path / "out.json"
    result = _invoke(
        cli_app, "--model", str(trained.best), "--data", str(trained.dataset), "--split", "val", "--out", str(out),
        "--json", str(report), "--device", "cpu", "--conf", "0.001", "--no-map",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "class confusion: skipped (needs the photos' true points (--points)" in " ".join(result.output.split())
    doc = json.loads(report.read_text())
    assert doc["overall"]["confusion"] is None and "--points" in doc["overall"]["confusion_note"]
    assert all(v["interval"] is not None for p in doc["photos"] for v in p["classes"].values())
    assert not (out / "confusion.csv").exists()


def test_evaluate_points_logs_the_confusion_into_the_run(cli_app, trained_home, tmp_path: Path) -> None:
    """A registered version evaluated on points logs the matching scalars and the confusion files. It belongs
    to a run of its own (v1's files), so the other tests' view of v1's run stays as they expect it."""
    from mlflow.tracking import MlflowClient

    from rookery.config import get_settings

    t = trained_home
    uri = get_settings().tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    v1 = client.get_model_version("rookery", t.version)
    run = client.create_run(client.get_run(t.run_id).info.experiment_id, run_name="points-eval").info.run_id
    client.set_terminated(run)
    version = str(client.create_model_version("rookery", source=v1.source, run_id=run).version)
    out = tmp_path / "eval"
    result = _invoke(
        cli_app, "--model", f"models:/rookery/{version}", "--points", str(t.survey / "points.csv"),
        "--images", str(t.survey / "train"), "--masks", str(t.survey / "masks"),
        "--classes", str(t.survey / "classes.yaml"), "--out", str(out), "--device", "cpu", "--workers", "1",
        "--conf", "0.001",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"logged into MLflow run {run}" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    logged = client.get_run(run).data.metrics
    assert logged["eval/matched_fraction"] == pytest.approx(metrics["confusion"]["matched_fraction"])
    assert logged["eval/interval_coverage"] == pytest.approx(metrics["intervals"]["coverage"])
    for k, c in enumerate(metrics["model"]["class_names"]):
        assert logged[f"eval/missed/{c}"] == metrics["confusion"]["matrix"][k][-1]
    names = {Path(a.path).name for a in client.list_artifacts(run, "evaluation")}
    assert names == FILES | {"confusion.csv", "confusion.png"}
