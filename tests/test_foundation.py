"""The package's foundations: light import, settings, offline switches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rookery.config import Settings, get_settings


def test_import_is_light():
    # `import rookery` and the CLI module must not pull in the heavy stack: --help stays fast.
    code = (
        "import sys, rookery, rookery.cli, rookery.config, rookery.types, rookery.data.classes\n"
        "names = ('torch', 'ultralytics', 'mlflow', 'torchvision', 'onnxruntime')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_settings_default_to_one_home_folder(rookery_home: Path):
    s = get_settings()
    assert s.home == rookery_home.resolve()
    assert s.tracking_uri == f"sqlite:///{rookery_home.resolve() / 'mlflow.db'}"
    assert Path(s.artifact_root).parent == s.home
    assert s.datasets_dir == s.home / "datasets"
    assert s.history_url.startswith("sqlite:///") and s.history_url.endswith("history.db")
    assert s.model_uri == "models:/rookery@champion"


def test_settings_env_overrides(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ROOKERY_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("ROOKERY_MODEL_NAME", "seals")
    get_settings.cache_clear()
    s = get_settings()
    assert s.tracking_uri == "http://mlflow:5000"
    assert s.model_uri == "models:/seals@champion"


def test_settings_read_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".env").write_text("ROOKERY_HISTORY_URL=postgresql+psycopg://127.0.0.1/test\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().history_url == "postgresql+psycopg://127.0.0.1/test"


def test_offline_switches_are_set():
    # conftest called ensure_offline() for the session; Ultralytics and MLflow read these at import.
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    assert font.is_file() and font.stat().st_size > 100_000


def test_ultralytics_plots_without_download(tmp_path: Path):
    # A real Ultralytics plot in a fresh process: it would fetch Arial.ttf if the font were missing,
    # and the network guard is not there to stop it, so check that no download is attempted.
    code = (
        "import socket\n"
        "def no_net(*a, **k): raise SystemExit('network access attempted')\n"
        "socket.create_connection = no_net\n"
        "from rookery.offline import ensure_offline; ensure_offline()\n"
        "from ultralytics.utils.checks import check_font\n"
        "print(check_font('Arial.ttf'))\n"
    )
    env = {**os.environ, "ROOKERY_HOME": str(tmp_path)}
    for key in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert str(tmp_path) in out.stdout


def test_example_classes_match_the_sealion_palette():
    from rookery.data.classes import SEALION_CLASSES, Classes

    repo = Path(__file__).resolve().parents[1]
    assert Classes.load(repo / "examples" / "sealions" / "classes.yaml") == SEALION_CLASSES


def test_mlflow_tracking_uri_is_followed_only_inside_mlflow_run(monkeypatch: pytest.MonkeyPatch, rookery_home: Path):
    # mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into the process: alone it must not redirect rookery
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert Settings().tracking_uri == f"sqlite:///{rookery_home.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc")  # `mlflow run` sets both for the project's command
    assert Settings().tracking_uri == "sqlite:////elsewhere.db"
