"""deploy/compose.yml without Docker: valid against the Compose Specification's JSON schema after interpolation
with deploy/.env.example, healthchecks and start order, where the app's settings point, no secret in the file,
and the tracking server's exact command run for real against PostgreSQL.

The schema is vendored beside this file (compose.schema.json): the Compose Specification's JSON schema
(compose-spec/compose-spec, Apache-2.0), taken byte for byte from the npm package dclint@3.1.0
(schemas/compose.schema.json), so the tests need no npm and nothing is fetched at run time. To move it to a newer
specification, replace the file with the one in compose-spec/compose-spec's schema/compose-spec.json.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from processes import stop_process

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
SCHEMA = Path(__file__).with_name("compose.schema.json")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $NAME; $$ is a literal $
VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|(\w+))")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (values only), raising on a missing required variable."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        is_set = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return str(current) if is_set else str(interpolate(arg, env))
        if op in (":?", "?"):
            if not is_set:
                raise KeyError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return str(interpolate(arg, env)) if is_set else ""
        return current or ""

    return VARIABLE.sub(one, value)


def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def example_env() -> dict[str, str]:
    env = read_env_file(ENV_EXAMPLE)
    return {k: v or f"test-{k.lower()}" for k, v in env.items()}  # fill the secrets left empty on purpose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(raw(), example_env())


@pytest.fixture(scope="module")
def validator() -> Any:
    import jsonschema  # a dev dependency: `make test` installs it, so a missing one fails instead of skipping

    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any], validator: Any) -> None:
    assert errors(validator, compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "app", "helthcheck"), {"test": ["CMD", "true"]}),  # a misspelt key
        (("services", "app", "depends_on", "mlflow", "condition"), "when_ready"),  # not a condition
        (("services", "postgres", "ports"), "5432"),  # a string where a list belongs
    ],
)
def test_the_schema_catches_a_broken_file(
    compose: dict[str, Any], validator: Any, path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert errors(validator, broken) != []


def test_required_secrets_must_be_set() -> None:
    env = read_env_file(ENV_EXAMPLE)  # as shipped: the secrets are empty
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw(), env)


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if name == "train":
            # A one-shot job under a profile: nothing waits on it, and the image's /ready check would only
            # ever call it unhealthy, so it is switched off on purpose.
            assert service["profiles"] == ["train"] and check == {"disable": True}
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_services_start_after_their_dependencies_are_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services["app"]["depends_on"]) == {"postgres", "mlflow"}
    assert set(services["mlflow"]["depends_on"]) == {"postgres"}
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert dependency in services


def test_the_app_follows_the_champion_on_the_tracking_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mlflow_command = services["mlflow"]["command"]
    assert "--port=5000" in mlflow_command and "--host=0.0.0.0" in mlflow_command
    for name in ("app", "train"):  # the training job logs to the same server the app reads
        assert services[name]["environment"]["ROOKERY_TRACKING_URI"] == "http://mlflow:5000"
    app = services["app"]["environment"]
    assert app["ROOKERY_MODEL_URI"] == "models:/rookery@champion"
    # the history in its own PostgreSQL database, the one the init script creates
    assert app["ROOKERY_HISTORY_URL"] == "postgresql+psycopg://rookery@postgres:5432/rookery"
    assert "CREATE DATABASE rookery;" in compose["configs"]["postgres-init"]["content"]
    assert services["app"]["command"][:2] == ["rookery", "serve"]


def test_the_tracking_server_keeps_runs_in_postgres_and_proxies_artifacts_to_a_volume(
    compose: dict[str, Any],
) -> None:
    mlflow = compose["services"]["mlflow"]
    options = dict(arg.split("=", 1) for arg in mlflow["command"] if "=" in arg)
    assert options["--backend-store-uri"] == "postgresql+psycopg://rookery@postgres:5432/mlflow"
    assert "--serve-artifacts" in mlflow["command"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in mlflow["volumes"]}
    assert options["--artifacts-destination"].startswith(next(iter(mounts)))
    assert mounts[next(iter(mounts))] in compose["volumes"]


def test_no_secret_is_written_in_the_file() -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"://[^/\s:@$]+:[^@\s]+@", text), "a password in a URL"
    for name, service in raw()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), f"{name}.{key} must be a required ${{VAR:?}}"


def test_every_variable_is_documented_in_the_env_example() -> None:
    used = {m.group(2) or m.group(5) for m in VARIABLE.finditer(COMPOSE.read_text()) if not m.group(1)}
    documented = read_env_file(ENV_EXAMPLE)
    assert used - set(documented) == set()
    for key, value in documented.items():
        if SECRET_NAME.search(key):
            assert value == "", f"{key} must be empty in the example (compose then refuses to start)"


def test_the_tracking_servers_command_runs_against_postgresql(
    compose: dict[str, Any], postgres_db: str, tmp_path: Path, loopback_port: int
) -> None:
    """The compose file's own mlflow command, on loopback: the psycopg backend URI and the allowed Host header
    (the app calls it as mlflow:5000) both work."""
    command = list(compose["services"]["mlflow"]["command"])
    replace = {
        "--host": "127.0.0.1",
        "--port": str(loopback_port),
        "--workers": "1",
        "--backend-store-uri": postgres_db,
        "--artifacts-destination": str(tmp_path / "mlartifacts"),
    }
    for i, arg in enumerate(command):
        key = arg.split("=", 1)[0]
        if key in replace:
            command[i] = f"{key}={replace[key]}"
    assert command[:2] == ["mlflow", "server"]
    command[0] = str(Path(sys.executable).with_name("mlflow"))
    env = {**os.environ, **compose["services"]["mlflow"]["environment"]}
    log = tmp_path / "mlflow.log"
    proc = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{loopback_port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)

        def search(host: str) -> int:
            request = urllib.request.Request(
                f"{url}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return int(e.code)

        assert search("mlflow:5000") == 200  # the app's name for it
        assert search("attacker.example:5000") == 403  # DNS-rebinding protection stays on
    finally:
        stop_process(proc)
