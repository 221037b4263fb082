"""The images, built and run for real with podman (issue 19), not only linted (test_dockerfiles.py does that).

No image registry is reachable on the development and CI machines, so deploy/tools/podman-setup.sh (as root)
installs podman and bootstraps a local Python 3.11 base (Debian bookworm), which `podman build --from` substitutes
for the Dockerfiles' public, digest-pinned base; pip inside the build reaches the package index through the host's CA
bundle, mounted. deploy/README.md, "Building without a registry", has the same commands.

Marked `container` (not run by the default `make test`): `pytest -m container`. Skips, with the reason, where podman or
the base image is missing, or podman is refused. Layers are cached by podman, so a second build takes seconds.
Every container is started detached on loopback and removed by its id at the end, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from processes import free_port

# Builds take minutes on a busy 2-core machine: more than the suite's 600 s default per test.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "deploy" / "tools" / "podman-setup.sh"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SLIM_IMAGE = "localhost/rookery:serve-test"
# The line deploy/README.md adds to MLflow's generated Dockerfile (the libraries opencv-python loads).
OPENCV_LIBS_LAYER = (
    "\nRUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libxcb1 "
    "&& rm -rf /var/lib/apt/lists/*\n"
)
NETWORK_ERRORS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def base_image() -> str:
    """The local Python base of podman-setup.sh; skips (with what to run) where podman cannot build here."""
    if shutil.which("podman") is None:
        pytest.skip(f"podman is not installed: run {SETUP.relative_to(REPO)} as root")
    if os.geteuid() != 0:
        pytest.skip("the container tests use rootful podman: run them as root")
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        pytest.skip(f"podman is refused here: {info.stderr.strip()[-500:]}")
    base = subprocess.run([str(SETUP), "--print"], capture_output=True, text=True, check=True).stdout.strip()
    if podman("image", "exists", base, check=False).returncode != 0:
        pytest.skip(f"the base image {base} is missing: run {SETUP.relative_to(REPO)} as root")
    return base


def build(dockerfile: Path, tag: str, base: str, *extra: str, timeout: float = 1500) -> None:
    """`podman build` of a Dockerfile from its context (the repository, for deploy/'s), the first FROM replaced by the
    local base."""
    context = REPO if dockerfile.parent == REPO / "deploy" else dockerfile.parent
    # --format docker: the OCI format has no HEALTHCHECK, and podman would drop the Dockerfile's.
    args = ["build", "--format", "docker", "--pull=never", "--from", base, "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    result = podman(*args, *extra, "-f", str(dockerfile), "-t", tag, str(context), timeout=timeout, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(e in output for e in NETWORK_ERRORS):
            pytest.skip(f"the package index is not reachable from the build: {output[-500:]}")
        pytest.fail(f"building {dockerfile.name} failed:\n{output[-4000:]}")


@pytest.fixture(scope="module")
def slim_image(base_image: str) -> str:
    started = time.monotonic()
    build(REPO / "deploy" / "Dockerfile.serve", SLIM_IMAGE, base_image)
    print(f"built {SLIM_IMAGE} in {time.monotonic() - started:.0f} s")
    return SLIM_IMAGE


@pytest.fixture
def run_container() -> Iterator[Callable[..., tuple[str, str]]]:
    """Start an image detached, its port (8000) published on a free loopback port; returns (container id, base URL).
    Every container started is removed by id (with its anonymous /data volume) at the end."""
    ids: list[str] = []

    def start(image: str, *args: str, volumes: tuple[str, ...] = (), port_inside: int = 8000) -> tuple[str, str]:
        port = free_port()
        options = ["run", "-d", "-p", f"127.0.0.1:{port}:{port_inside}"]
        for volume in volumes:
            options += ["-v", volume]
        cid = podman(*options, image, *args).stdout.strip()
        ids.append(cid)
        return cid, f"http://127.0.0.1:{port}"

    yield start
    for cid in ids:
        podman("rm", "-f", "-v", "-t", "5", cid, check=False)


def wait_ready(cid: str, url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}}", cid).stdout.strip()
        if state not in ("running", "created", "configured"):
            pytest.fail(f"the container is {state}:\n{podman('logs', cid).stderr[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"not ready after {timeout:.0f} s:\n{podman('logs', cid).stderr[-3000:]}")


def exported_model(trained_model, folder: Path) -> Path:
    """The session model's ONNX export alone in a folder the image's user (uid 10001) can read."""
    folder.mkdir()
    shutil.copy2(trained_model.onnx, folder / "best.onnx")
    folder.chmod(0o755)
    (folder / "best.onnx").chmod(0o644)
    return folder


def test_slim_image_has_no_torch(slim_image: str) -> None:
    probe = "import importlib.util as u; print([m for m in ('torch', 'ultralytics', 'onnxruntime') if u.find_spec(m)])"
    result = podman("run", "--rm", slim_image, "python", "-c", probe)
    assert result.stdout.strip() == "['onnxruntime']"
    size = int(podman("image", "inspect", "--format", "{{.Size}}", slim_image).stdout)
    print(f"{slim_image}: {size / 1e6:.0f} MB")


def test_slim_image_serves_and_counts_a_photo(slim_image, run_container, trained_model, tmp_path: Path) -> None:
    models = exported_model(trained_model, tmp_path / "models")
    cid, url = run_container(
        slim_image,
        *("rookery", "serve", "--model", "/models/best.onnx", "--host", "0.0.0.0", "--port", "8000"),
        volumes=(f"{models}:/models:ro",),
    )
    wait_ready(cid, url)

    model = httpx.get(f"{url}/api/v1/model", timeout=30).json()
    assert model["backend"] == "onnx" and model["class_names"]
    photo = sorted(trained_model.photos.glob("*.jpg"))[0]
    with photo.open("rb") as f:
        r = httpx.post(f"{url}/api/v1/predict", files={"files": (photo.name, f, "image/jpeg")}, timeout=120)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert list(result["counts"]) == model["class_names"]
    assert result["total"] == sum(result["counts"].values()) == len(result["detections"])

    # The image's own HEALTHCHECK (python + urllib against /ready, as the non-root user) passes too.
    assert podman("healthcheck", "run", cid, check=False).returncode == 0
    user = json.loads(podman("inspect", cid).stdout)[0]["Config"]["User"]
    assert user.split(":")[0] == "10001"


def _count_one_photo_with_invocations(url: str, trained_model) -> list[dict]:
    import base64

    photo = sorted(trained_model.photos.glob("*.jpg"))[0]
    request = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(photo.read_bytes()).decode()]]}}
    r = httpx.post(f"{url}/invocations", json=request, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_full_image_serves_a_pytorch_checkpoint(base_image, run_container, trained_model, tmp_path: Path) -> None:
    """deploy/Dockerfile (torch, Ultralytics, full MLflow: serves .pt and trains). Slow: torch is ~1-5 GB.
    ROOKERY_TORCH_INDEX_URL overrides the Dockerfile's PyTorch CPU index where that is not reachable (here:
    https://pypi.org/simple, whose torch is the CUDA build: a larger image that runs on the CPU too)."""
    extra = []
    if os.environ.get("ROOKERY_TORCH_INDEX_URL"):
        extra = ["--build-arg", f"TORCH_INDEX_URL={os.environ['ROOKERY_TORCH_INDEX_URL']}"]
    build(REPO / "deploy" / "Dockerfile", "localhost/rookery:cpu-test", base_image, *extra, timeout=3000)
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    shutil.copy2(trained_model.best, models / "best.pt")  # no .onnx beside it: torch must run it
    (models / "best.pt").chmod(0o644)
    cid, url = run_container(
        "localhost/rookery:cpu-test",
        *("rookery", "serve", "--model", "/models/best.pt", "--host", "0.0.0.0", "--port", "8000"),
        volumes=(f"{models}:/models:ro",),
    )
    wait_ready(cid, url, timeout=400)
    assert httpx.get(f"{url}/api/v1/model", timeout=30).json()["backend"] == "torch"
    predictions = _count_one_photo_with_invocations(url, trained_model)
    assert all(set(p) >= {"class", "score", "x1", "y1", "x2", "y2"} for p in predictions)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_mlflow_build_docker_image_of_the_registered_model(base_image, run_container, trained_model, tmp_path):
    """MLflow's own path, `mlflow models build-docker -m models:/rookery@champion`, is `generate-dockerfile` and a
    `docker build`; here the build is podman's, with the same base substitution (MLflow's FROM python:3.11.X-slim is
    the first FROM). The image installs the logged model's requirements (full MLflow, torch, Ultralytics) and serves
    MLflow's scoring server on port 8080. Slow: 13 min and 7.5 GB measured."""
    context = tmp_path / "mlflow-docker"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_model.tracking_uri}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    subprocess.run(
        [str(mlflow_cli), "models", "generate-dockerfile", "-m", "models:/rookery@champion", "-d", str(context)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    dockerfile = context / "Dockerfile"
    first_from = next(line for line in dockerfile.read_text().splitlines() if line.startswith("FROM"))
    assert first_from.startswith("FROM python:3.11")  # what --from replaces
    # MLflow's python:3.11-slim base has no libGL/libxcb, which opencv-python (a requirement of the logged model,
    # through rookery and Ultralytics) loads at import: unchanged, the image builds but its server dies with
    # "ImportError: libxcb.so.1" (seen with MLflow 3.17.2). deploy/README.md documents this one added line.
    with dockerfile.open("a") as f:
        f.write(OPENCV_LIBS_LAYER)
    build(context / "Dockerfile", "localhost/rookery-mlflow:test", base_image, timeout=3000)

    cid, url = run_container("localhost/rookery-mlflow:test", port_inside=8080)
    deadline = time.monotonic() + 300
    while True:  # MLflow's scoring server answers /ping once the model is loaded
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        running = podman("inspect", "--format", "{{.State.Running}}", cid).stdout.strip() == "true"
        if not running or time.monotonic() > deadline:
            pytest.fail(f"MLflow's server did not answer /ping:\n{podman('logs', cid).stderr[-3000:]}")
        time.sleep(1)
    predictions = _count_one_photo_with_invocations(url, trained_model)
    assert all(set(p) >= {"class", "score", "x1", "y1", "x2", "y2"} for p in predictions)
