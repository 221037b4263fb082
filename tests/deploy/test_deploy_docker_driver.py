"""deploy/deploy.sh's default Docker driver against a stand-in docker CLI (no Docker engine here): what it asks
Docker for, the nginx upstream file it writes, and the file put back when nginx rejects it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
from pathlib import Path

from deploy_host import DEPLOY, Host, ready

FAKE_DOCKER = textwrap.dedent(
    f"""\
    #!{sys.executable}
    # A stand-in for the docker CLI (no engine here): `run` starts a process that is ready at once on the
    # published port, `stop`/`rm` end it; every call is recorded so the test can read what deploy.sh asked for.
    import os, signal, subprocess, sys
    from pathlib import Path

    state = Path(os.environ["DEPLOY_TEST_DIR"])
    args = sys.argv[1:]
    with (state / "docker-calls").open("a") as f:
        f.write(" ".join(args) + "\\n")
    pid_of = lambda name: state / f"docker-{{name}}.pid"
    if args[:2] == ["image", "inspect"]:
        sys.exit(0)
    if args[:2] == ["container", "inspect"]:
        name = args[-1]
        if not pid_of(name).exists():
            sys.exit(1)
        if "--format" in args:
            print("true 0")
    elif args[0] == "run":
        name = args[args.index("--name") + 1]
        port = args[args.index("--publish") + 1].split(":")[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(state / "www"), port],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        pid_of(name).write_text(str(proc.pid))
    elif args[0] == "stop":
        name = args[-1]
        os.killpg(int(pid_of(name).read_text()), signal.SIGKILL)
    elif args[0] == "rm":
        name = args[-1]
        if pid_of(name).exists():
            if "-f" in args:
                os.killpg(int(pid_of(name).read_text()), signal.SIGKILL)
            pid_of(name).unlink()
        elif "-f" not in args:
            sys.exit(1)
    elif args[0] == "logs":
        print("container log line")
    """
)


def _stand_in_docker(host: Host, tmp_path: Path) -> tuple[Path, Path]:
    """A bin folder with the stand-in docker CLI, a page the "containers" serve as ready, and the upstream path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (host.dir / "www").mkdir()
    (host.dir / "www" / "ready").write_text("ok")
    return bin_dir, tmp_path / "rookery-upstream.conf"


def _kill_containers(host: Host) -> None:
    """Stop the stand-in containers (processes) whatever the test left running."""
    for pid_file in host.dir.glob("docker-*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_the_docker_driver_runs_containers_and_points_nginx_at_the_live_one(host: Host, tmp_path: Path) -> None:
    """The default driver, against a stand-in docker CLI: what it asks Docker for, and the nginx upstream file."""
    bin_dir, upstream = _stand_in_docker(host, tmp_path)
    reloads = tmp_path / "reloads"
    env = {
        "ROOKERY_DEPLOY_DRIVER": "",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ROOKERY_DEPLOY_UPSTREAM": str(upstream),
        "ROOKERY_DEPLOY_PROXY_RELOAD": f"echo reload >> {reloads}",
        "ROOKERY_DEPLOY_ENV_FILE": "/etc/rookery/rookery.env",
    }
    blue, green = host.ports
    try:
        first = host.deploy("ghcr.io/o/rookery:sha-1", timeout=30, extra_env=env)
        assert first.returncode == 0, first.stderr
        assert f"server 127.0.0.1:{blue};" in upstream.read_text()
        run = next(c for c in host.lines("docker-calls") if c.startswith("run "))
        assert "--name rookery-blue" in run and f"--publish 127.0.0.1:{blue}:8000" in run
        assert "--env-file /etc/rookery/rookery.env" in run and run.endswith(" ghcr.io/o/rookery:sha-1")

        second = host.deploy("ghcr.io/o/rookery:sha-2", timeout=30, extra_env=env)
        assert second.returncode == 0, second.stderr
        assert f"server 127.0.0.1:{green};" in upstream.read_text()
        assert reloads.read_text().splitlines() == ["reload", "reload"]
        assert "stop --time 30 rookery-blue" in host.lines("docker-calls")

        # nginx rejects the next upstream: the file is put back, green stays live, the new blue is removed
        env["ROOKERY_DEPLOY_PROXY_RELOAD"] = "exit 1"
        third = host.deploy("ghcr.io/o/rookery:sha-3", timeout=30, extra_env=env)
        assert third.returncode == 1 and "the proxy did not switch to blue" in third.stderr
        assert f"server 127.0.0.1:{green};" in upstream.read_text()
        assert host.live() == "green" and ready(green) and not ready(blue)
    finally:
        _kill_containers(host)


def test_an_upstream_file_that_cannot_be_written_fails_the_switch_and_rolls_back(host: Host, tmp_path: Path) -> None:
    """The switch runs inside `if ! driver switch`, where errexit is off: a failed write must still fail it (before,
    the proxy reloaded its old file, the deploy reported success and stopped the live colour)."""
    bin_dir, upstream = _stand_in_docker(host, tmp_path)
    env = {
        "ROOKERY_DEPLOY_DRIVER": "",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ROOKERY_DEPLOY_UPSTREAM": str(upstream),
        "ROOKERY_DEPLOY_PROXY_RELOAD": "true",
    }
    blue, green = host.ports
    try:
        assert host.deploy("ghcr.io/o/rookery:sha-1", timeout=30, extra_env=env).returncode == 0
        assert host.live() == "blue"
        env["ROOKERY_DEPLOY_UPSTREAM"] = str(tmp_path / "no-such-dir" / "rookery-upstream.conf")
        second = host.deploy("ghcr.io/o/rookery:sha-2", timeout=30, extra_env=env)
        assert second.returncode == 1, second.stderr
        assert "DEPLOY FAILED: the proxy did not switch to green" in second.stderr
        assert host.live() == "blue" and ready(blue) and not ready(green)
        assert f"server 127.0.0.1:{blue};" in upstream.read_text()
    finally:
        _kill_containers(host)


def test_the_driver_never_replaces_the_colour_the_state_file_says_is_live(host: Host, tmp_path: Path) -> None:
    """`start` of the live colour (a state file edited by hand, a bug) is refused before any `docker rm -f`."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    host.state.parent.mkdir(parents=True, exist_ok=True)
    host.state.write_text("blue\n")
    script = f"source <(sed '$d' {DEPLOY}); state={host.state}; docker_driver start blue 8001 img"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DEPLOY_TEST_DIR": str(host.dir)}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "refusing to replace rookery-blue" in result.stderr, result.stderr
    assert not any(c.startswith("rm") for c in host.lines("docker-calls"))
