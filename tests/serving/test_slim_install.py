"""The slim serving install (issue 19): `pip install 'rookery[serve]'` into a fresh venv pulls neither torch nor
Ultralytics (nor full MLflow), and that venv serves an exported ONNX model: /ready, a photo counted through the REST
API and through MLflow's /invocations protocol, and a registered model followed by alias through mlflow-skinny.
A PyTorch checkpoint served there is refused in one line that names the extra.

Slow (a few minutes): pip installs ~900 MB into a new venv. pip reaches the package index by name; its downloads are
cached in build/pip-cache (ignored by git) so a second run installs from the cache. The servers themselves run
offline, on loopback.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import free_port, stop_process, wait_ready

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PIP_CACHE = REPO / "build" / "pip-cache"
# pip's words when the index cannot be reached at all: then the test cannot say anything about the extra, and skips.
NETWORK_ERRORS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


@pytest.fixture(scope="module")
def slim_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with `./[serve]` only, built from this checkout (not editable: what a user's pip installs)."""
    venv = tmp_path_factory.mktemp("slim") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # A copy of the sources, so that the build's own build/ and *.egg-info stay out of the shared checkout.
    src = tmp_path_factory.mktemp("slim-src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{src}[serve]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(e in output for e in NETWORK_ERRORS):
            pytest.skip(f"the package index is not reachable, so rookery[serve] cannot be installed: {output[-500:]}")
        pytest.fail(f"pip install rookery[serve] failed:\n{output[-3000:]}")
    return venv


def _python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)


def test_serve_extra_has_no_torch_ultralytics_or_full_mlflow(slim_venv: Path) -> None:
    for module in ("torch", "torchvision", "ultralytics"):
        result = _python(slim_venv, f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, f"{module} is importable"
    # mlflow-skinny's client is there (models:/ URIs, the registry); MLflow's full distribution (server, UI) is not.
    found = _python(
        slim_venv,
        "import importlib.metadata as m, mlflow\n"
        "def has(d):\n"
        "    try: m.distribution(d); return True\n"
        "    except m.PackageNotFoundError: return False\n"
        "print(has('mlflow-skinny'), has('mlflow'), has('onnxruntime'))",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["True", "False", "True"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOKERY_", "MLFLOW_", "VIRTUAL_ENV"))}
    return {**env, "ROOKERY_HOME": str(home), **extra}


@pytest.fixture
def serve(slim_venv: Path, tmp_path: Path) -> Iterator[object]:
    """Start `rookery serve` from the slim venv; every server started is stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(model: str, **env: str) -> str:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(slim_venv / "bin" / "rookery"), "serve", "--model", model, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(tmp_path / f"home-{port}", **env),
                cwd=tmp_path,
            )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log, timeout=180)
        return url

    yield start
    for proc in procs:
        stop_process(proc)


def _photo(trained_model) -> Path:
    return sorted(trained_model.photos.glob("*.jpg"))[0]


def _check_counted(body: dict, class_names: set[str]) -> int:
    (result,) = body["results"]
    assert set(result["counts"]) == class_names
    assert result["total"] == sum(result["counts"].values())
    assert len(result["detections"]) == result["total"]
    return result["total"]


def test_slim_venv_serves_an_exported_onnx_model(serve, trained_model, tmp_path: Path) -> None:
    # The .onnx alone (with the packaging metadata beside it, if training wrote one): no .pt to fall back on.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    onnx = Path(shutil.copy2(trained_model.onnx, model_dir / trained_model.onnx.name))
    meta = trained_model.onnx.parent / "rookery_model.json"
    if meta.is_file():
        shutil.copy2(meta, model_dir)
    url = serve(str(onnx))

    model = httpx.get(f"{url}/api/v1/model", timeout=30).json()
    class_names = set(model["class_names"])
    assert class_names and model["backend"] == "onnx"

    photo = _photo(trained_model)
    with photo.open("rb") as f:
        r = httpx.post(f"{url}/api/v1/predict", files={"files": (photo.name, f, "image/jpeg")}, timeout=120)
    assert r.status_code == 200, r.text
    total = _check_counted(r.json(), class_names)

    # MLflow's scoring protocol: pandas and mlflow-skinny's scoring functions, no full MLflow.
    request = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(photo.read_bytes()).decode()]]}}
    r = httpx.post(f"{url}/invocations", json=request, timeout=120)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]  # one row per detection, as the logged pyfunc answers
    assert {p["class"] for p in predictions} <= class_names
    assert len(predictions) == total  # the same photo, model and settings as the REST count above


def test_slim_venv_follows_a_registered_model_with_mlflow_skinny(serve, trained_model) -> None:
    # models:/NAME@ALIAS through mlflow-skinny's registry client; the logged model holds best.pt and best.onnx, and
    # without torch the ONNX export is what runs.
    url = serve("models:/rookery@champion", ROOKERY_TRACKING_URI=trained_model.tracking_uri)
    model = httpx.get(f"{url}/api/v1/model", timeout=30).json()
    assert model["version"] == trained_model.version and model["backend"] == "onnx"
    photo = _photo(trained_model)
    with photo.open("rb") as f:
        r = httpx.post(f"{url}/api/v1/predict", files={"files": (photo.name, f, "image/jpeg")}, timeout=120)
    assert r.status_code == 200, r.text
    _check_counted(r.json(), set(model["class_names"]))


def test_a_pytorch_checkpoint_without_torch_is_refused_naming_the_extra(slim_venv: Path, trained_model, tmp_path):
    lone = tmp_path / "pt"
    lone.mkdir()
    pt = shutil.copy2(trained_model.best, lone / "best.pt")  # no .onnx beside it
    result = subprocess.run(
        [str(slim_venv / "bin" / "rookery"), "serve", "--model", str(pt), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "home"),
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "best.pt is a PyTorch checkpoint and torch is not installed" in output
    assert "pip install 'rookery[serve,train]'" in output


def _site_packages_bytes(venv: Path) -> int:
    (site,) = venv.glob("lib/python3*/site-packages")
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


def test_install_sizes_slim_serve_vs_all(slim_venv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sizes the README's Install note gives, measured again in CI: `.[serve]` in its fresh venv and the
    development venv this suite runs in (`.[all,dev]` from the lock), printed into the log."""
    slim = _site_packages_bytes(slim_venv)
    full = _site_packages_bytes(Path(sys.prefix))
    sizes = f"install sizes (site-packages): .[serve] {slim / 1e9:.2f} GB, .[all,dev] {full / 1e9:.2f} GB"
    with capsys.disabled():  # into the log, past pytest's capture
        print(f"\n{sizes}")
    assert slim < 1.5e9, f".[serve] takes {slim / 1e9:.2f} GB: something heavy came back into the slim extra"
    assert full > 3 * slim  # torch's stack is what the slim install leaves out
