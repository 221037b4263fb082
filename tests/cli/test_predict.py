"""`rookery predict`: a real tiny model from the registry counts a folder of photos, one of them corrupt.

The model (conftest.py) is trained once per session at 64 px for one epoch; conf=0.001 keeps its (weak)
proposals, so every photo has detections to write, draw and compare.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rookery.cli import app
from rookery.imaging import list_images, read_image, write_image
from rookery.inference.backends import open_backend

runner = CliRunner()
LOW = ["--conf", "0.001"]


def _photos(trained_model, tmp_path: Path, corrupt: bool = True) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(trained_model.photos, folder)
    if corrupt:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a whole JPEG")
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_outputs_agree(out: Path, photos: list[str]) -> dict[str, dict[str, str]]:
    counts = {r["image"]: r for r in _rows(out / "counts.csv")}
    assert sorted(counts) == sorted(photos)
    detections = _rows(out / "detections.csv")
    per_image = Counter(r["image"] for r in detections)
    classes = [c for c in next(iter(counts.values())) if c != "image" and not c.startswith("total")]
    classes = [c for c in classes if not c.endswith(("_lo", "_hi"))]
    for row in counts.values():  # every count lies inside its 90 % interval, the total too
        for c in [*classes, "total"]:
            assert int(row[f"{c}_lo"]) <= int(row[c]) <= int(row[f"{c}_hi"])
    for image, row in counts.items():
        assert int(row["total"]) == per_image[image] == sum(int(row[c]) for c in classes)
        per_class = Counter(r["class"] for r in detections if r["image"] == image)
        assert all(int(row[c]) == per_class[c] for c in classes)
    doc = json.loads((out / "detections.json").read_text())
    assert doc["classes"] == classes
    assert {i["image"]: len(i["detections"]) for i in doc["images"]} == {k: int(v["total"]) for k, v in counts.items()}
    return counts


def test_predict_counts_a_folder_and_names_the_corrupt_photo(trained_model, tmp_path: Path):
    photos = _photos(trained_model, tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(photos), "--out", str(out), *LOW])  # default: the champion
    assert result.exit_code == 0, result.output
    assert "rookery v1 (champion)" in result.output
    assert "broken.jpg" in result.output and "not a readable image" in result.output
    names = sorted(p.stem for p in trained_model.photos.glob("*.jpg"))
    counts = _check_outputs_agree(out, names)
    assert sum(int(r["total"]) for r in counts.values()) > 0
    assert "4 photo(s) counted" in result.output and "total" in result.output
    # one annotated picture per counted photo, same size as the photo, with something drawn on it
    for name in names:
        drawn = read_image(out / "annotated" / f"{name}.jpg")
        original = read_image(photos / f"{name}.jpg")
        assert drawn.shape == original.shape
        assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 1.0


def test_resume_skips_done_photos_and_redoes_an_unfinished_one(trained_model, tmp_path: Path):
    photos = _photos(trained_model, tmp_path, corrupt=False)
    out = tmp_path / "out"
    assert runner.invoke(app, ["predict", str(photos), "--out", str(out), *LOW, "--no-annotate"]).exit_code == 0
    assert not (out / "annotated").exists()
    before = _rows(out / "detections.csv")
    # the run "stopped" after writing photo 3's detections but before its counts row
    lines = (out / "counts.csv").read_text().splitlines(keepends=True)
    assert lines[-1].startswith("3,")
    (out / "counts.csv").write_text("".join(lines[:-1]))
    shutil.copy(photos / "0.jpg", photos / "4.jpg")  # and a new photo arrived

    result = runner.invoke(app, ["predict", str(photos), "--out", str(out), *LOW, "--resume", "--no-annotate"])
    assert result.exit_code == 0, result.output
    assert "2 photo(s) counted" in result.output and "3 earlier" in result.output
    _check_outputs_agree(out, ["0", "1", "2", "3", "4"])
    after = _rows(out / "detections.csv")
    assert [r for r in after if r["image"] != "4"] == before  # nothing lost, nothing doubled

    # everything is done: nothing to count is not a failure
    again = runner.invoke(app, ["predict", str(photos), "--out", str(out), *LOW, "--resume"])
    assert again.exit_code == 0, again.output
    assert "0 photo(s) counted" in again.output


def _detections(out: Path) -> list[tuple]:
    rows = _rows(out / "detections.csv")
    return [(r["image"], r["class"], *(float(r[k]) for k in ("score", "x1", "y1", "x2", "y2"))) for r in rows]


def test_every_model_uri_gives_the_same_detections(trained_model, tmp_path: Path):
    photos = _photos(trained_model, tmp_path, corrupt=False)
    # local files carry no tile/overlap/imgsz: give the packaged ones explicitly to all
    same = ["--tile", "128", "--overlap", "16", "--imgsz", "64", *LOW, "--no-annotate", "--backend", "onnx"]
    uris = {
        "alias": "models:/rookery@champion",
        "version": f"models:/rookery/{trained_model.version}",
        "run": f"runs:/{trained_model.run_id}/model",
        "pt": str(trained_model.best),
        "onnx": str(trained_model.onnx),
    }
    results = {}
    for key, uri in uris.items():
        out = tmp_path / key
        result = runner.invoke(app, ["predict", str(photos), "--model", uri, "--out", str(out), *same])
        assert result.exit_code == 0, (key, result.output)
        results[key] = _detections(out)
    reference = results["alias"]
    assert len(reference) > 0
    for key, rows in results.items():
        assert rows == reference, key
    # PyTorch on the .pt counts the same photos, and its network agrees with ONNX Runtime up to float rounding.
    # (Not row by row: the session's tiny model scores its classes almost alike, ~0.006 each, so float rounding
    # can flip a box's top class between the two runtimes, and with it the per-class NMS.)
    out = tmp_path / "torch"
    torch_args = [a if a != "onnx" else "torch" for a in same]
    result = runner.invoke(app, ["predict", str(photos), "--model", uris["pt"], "--out", str(out), *torch_args])
    assert result.exit_code == 0, result.output
    assert [r["image"] for r in _rows(out / "counts.csv")] == [
        r["image"] for r in _rows(tmp_path / "alias" / "counts.csv")
    ]
    tiles = np.stack([read_image(p)[:128, :128] for p in list_images(trained_model.photos)[:2]])
    raw = [
        b.run(b.prepare(tiles)) for b in (open_backend(trained_model.best, kind, "cpu") for kind in ("onnx", "torch"))
    ]
    np.testing.assert_allclose(raw[0], raw[1], rtol=1e-3, atol=1e-3)


def test_masks_exclude_regions_by_photo_name(trained_model, tmp_path: Path):
    photos = _photos(trained_model, tmp_path, corrupt=False)
    masks = tmp_path / "masks"
    height, width = read_image(photos / "0.jpg").shape[:2]
    write_image(masks / "0.png", np.zeros((height, width), np.uint8))  # photo 0: ignore everything
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(photos), "--out", str(out), *LOW, "--masks", str(masks)])
    assert result.exit_code == 0, result.output
    counts = _check_outputs_agree(out, ["0", "1", "2", "3"])
    assert int(counts["0"]["total"]) == 0 and int(counts["1"]["total"]) > 0  # photos without a mask: everywhere


@pytest.mark.parametrize(
    ("model", "message"),
    [
        # an alias nobody set
        ("models:/rookery@nope", "no model 'rookery' with alias 'nope' in the registry at"),
        # a weights file that is not there
        ("missing.pt", "model file missing.pt does not exist"),
    ],
)
def test_a_missing_model_is_one_clear_line(trained_model, tmp_path: Path, monkeypatch, model: str, message: str):
    monkeypatch.chdir(tmp_path)
    photos = _photos(trained_model, tmp_path, corrupt=False)
    result = runner.invoke(app, ["predict", str(photos), "--model", model])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "predictions").exists()


def test_no_photo_counted_is_exit_1(trained_model, tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["predict", str(bad / "*.*"), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "a.jpg is empty" in out and "b.png is not a readable image" in out
    assert "nowhere: does not exist" in out and "none of the 2 photo(s) could be counted" in out


def test_no_photo_at_all_is_one_line(tmp_path: Path):
    # nothing to count: said before any model is loaded
    result = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), "--model", "models:/never@loaded"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: no photos to count: {tmp_path / 'nowhere'}: does not exist"


@pytest.mark.parametrize(
    ("names", "bgr"),
    [
        # sea lion classes: their dot colours from classes.yaml (RGB there, BGR here)
        (("adult_females", "pups"), [(10, 46, 87), (21, 174, 38)]),
        # any other classes: the fixed palette, in class order
        (("gull", "tern"), [(180, 119, 31), (14, 127, 255)]),
    ],
)
def test_annotation_colours(names, bgr):
    from rookery.inference.render import class_colors

    assert class_colors(names) == bgr
