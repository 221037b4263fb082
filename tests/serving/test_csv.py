"""CSV downloads (issue 16): one CSV writer on the server, for the history and each prediction; a client's text
never runs as a spreadsheet formula, and names with ; or , survive."""

from __future__ import annotations

import csv
import io

import pytest

from rookery.serving.csv_export import csv_text, safe_cell

EVIL = "=SUM(1;2)+cmd,a;b.jpg"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),  # each start a spreadsheet runs as a formula
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("a;b", "a;b"),
        (-3, -3),  # numbers stay numbers
    ],
)
def test_safe_cell(value: object, cell: object):
    assert safe_cell(value) == cell


def test_csv_text_quotes_what_needs_it():
    assert list(csv.reader(io.StringIO(csv_text([["a;b", 'say "hi"', "x,y"]])))) == [["a;b", 'say "hi"', "x,y"]]


def test_every_csv_of_the_service_neutralises_formulas(client, photo_bytes: bytes):
    files = [("files", (EVIL, photo_bytes, "image/jpeg"))]
    result = client.post("/api/v1/predict", files=files, data={"conf": "0.001"}).json()["results"][0]
    pid = result["id"]
    counts = client.get(f"/api/v1/predictions/{pid}/counts.csv")
    assert counts.status_code == 200 and counts.headers["content-type"].startswith("text/csv")
    header, row = list(csv.reader(io.StringIO(counts.text)))
    assert header[0] == "image" and header[-2:] == ["total_lo", "total_hi"]
    assert row[0] == "'" + result["file_name"] and row[0].startswith("'=") and ";" in row[0]
    assert int(row[1 + len(result["counts"])]) == result["total"]
    detections = list(csv.reader(io.StringIO(client.get(f"/api/v1/predictions/{pid}/detections.csv").text)))
    assert detections[0] == ["image", "class", "score", "x1", "y1", "x2", "y2"]
    assert len(detections) == 1 + result["total"] and all(r[0].startswith("'=") for r in detections[1:])
    history = list(csv.reader(io.StringIO(client.get("/api/v1/predictions.csv").text)))
    assert history[1][2].startswith("'=")
    assert client.get("/api/v1/predictions/nope/counts.csv").status_code == 404
    assert client.get(f"/api/v1/predictions/{pid}/other.csv").status_code == 422
