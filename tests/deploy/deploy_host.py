"""A deployment host for deploy/deploy.sh without Docker: a driver (ROOKERY_DEPLOY_DRIVER) that runs each
"container" as a process on a loopback port, the two ports, and the state file.

The "image" names what the driver starts: rookery:good-N serves the session's tiny trained model with a real
`rookery serve`, rookery:missing-model asks for a model the registry does not have (the server refuses to start),
rookery:never-ready answers 404 on /ready for ever, rookery:no-start fails to start, and rookery:static is a
stand-in that is ready at once (for the cases about the proxy, ssh and the Docker driver, which need no model).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from processes import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "deploy.sh"
ROOKERY = Path(sys.executable).with_name("rookery")

DRIVER = textwrap.dedent(
    f"""\
    #!{sys.executable}
    # Test driver for deploy/deploy.sh: start COLOUR PORT IMAGE | stop COLOUR | running COLOUR | logs COLOUR |
    # switch COLOUR PORT. A "container" is a process group; `switch` writes the live port to the traffic file.
    import os, signal, subprocess, sys, time
    from pathlib import Path

    state = Path(os.environ["DEPLOY_TEST_DIR"])
    verb, colour, *rest = sys.argv[1:]
    pid_file, log_file = state / f"{{colour}}.pid", state / f"{{colour}}.log"


    def alive(pid):
        try:
            stat = Path(f"/proc/{{pid}}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


    def with_log(name, line):
        with (state / name).open("a") as f:
            f.write(line + "\\n")


    if verb == "start":
        port, image = rest
        with_log("started", f"{{colour}} {{port}} {{image}}")
        serve = [{str(ROOKERY)!r}, "serve", "--host", "127.0.0.1", "--port", port, "--model"]
        commands = {{
            "rookery:missing-model": serve + ["models:/missing@champion"],
            "rookery:never-ready": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", port],
            # a stand-in that is ready at once (serves the file www/ready) for the proxy tests
            "rookery:static": [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(state / "www"), port],
        }}
        if image == "rookery:no-start":
            sys.exit("no such image")
        command = serve + ["models:/rookery@champion"] if image.startswith("rookery:good") else commands[image]
        with log_file.open("w") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        pid_file.write_text(str(proc.pid))
    elif verb == "stop":
        with_log("stopped", colour)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not alive(pid):
                    break
            pid_file.unlink()
    elif verb == "running":
        sys.exit(0 if pid_file.exists() and alive(int(pid_file.read_text())) else 1)
    elif verb == "logs":
        if log_file.exists():
            sys.stdout.write(log_file.read_text())
    elif verb == "switch":
        if (state / "proxy-broken").exists():
            sys.exit("proxy rejected the new upstream")
        (state / "traffic.tmp").write_text(rest[0])
        (state / "traffic.tmp").replace(state / "traffic")
        with_log("switches", f"{{colour}} {{rest[0]}}")
    else:
        sys.exit(f"unknown operation {{verb}}")
    """
)


@dataclass
class Host:
    """One deployment host: the driver's folder, the two ports, the state file."""

    dir: Path
    driver: Path
    ports: tuple[int, int]
    state: Path

    def deploy(
        self, image: str, timeout: float = 120, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "ROOKERY_DEPLOY_DRIVER": str(self.driver),
            "ROOKERY_DEPLOY_PORTS": f"{self.ports[0]} {self.ports[1]}",
            "ROOKERY_DEPLOY_STATE": str(self.state),
            "ROOKERY_DEPLOY_TIMEOUT": str(int(timeout)),
            "ROOKERY_DEPLOY_INTERVAL": "0.5",
            "DEPLOY_TEST_DIR": str(self.dir),
            **(extra_env or {}),
        }
        result = subprocess.run(
            ["bash", str(DEPLOY), image], env=env, capture_output=True, text=True, timeout=timeout + 60, check=False
        )
        print(f"$ deploy.sh {image} -> {result.returncode}\n{result.stderr}")  # shown when a test fails
        return result

    def lines(self, name: str) -> list[str]:
        path = self.dir / name
        return path.read_text().splitlines() if path.exists() else []

    def traffic(self) -> int | None:
        path = self.dir / "traffic"
        return int(path.read_text()) if path.exists() else None

    def live(self) -> str | None:
        return self.state.read_text().strip() if self.state.exists() else None

    def running(self, colour: str) -> bool:
        return subprocess.run([str(self.driver), "running", colour], env=self._env(), check=False).returncode == 0

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DEPLOY_TEST_DIR": str(self.dir)}

    def stop_all(self) -> None:
        """Kill what a test left running (the driver's and the stand-in docker's processes)."""
        for pid_file in self.dir.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def model_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/model", timeout=5) as r:
        return str(json.load(r)["version"])


def make_host(tmp_path: Path) -> Host:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    driver.chmod(0o755)
    state_dir = tmp_path / "host"
    state_dir.mkdir()
    blue = free_port()
    green = free_port()
    while green == blue:
        green = free_port()
    return Host(state_dir, driver, (blue, green), tmp_path / "state" / "live")
