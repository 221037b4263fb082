"""A real Ray cluster on loopback, started as processes the tests own (helpers of conftest.py).

The cluster is `ray start --head --block` plus a second node joining it (one CPU each, small object stores),
each started in its own process group so that teardown (and the node-failure test) can end exactly the
processes it started, by process group id. Ray's fixed default ports are replaced by free ones, so two
sessions on one machine do not collide; usage reporting is off (offline).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from processes import free_port

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(80 * 1024 * 1024)
PHOTOS = 30


def ray_env(home: Path) -> dict[str, str]:
    """Offline, and a HOME of the test's own: Ray keeps state in ~/.ray (an auth token that an earlier local
    `ray.init()` wrote turns token authentication on for every later cluster of that user)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "ROOKERY_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env["HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class RayCluster:
    address: str
    temp: Path
    env: dict[str, str]
    head: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self) -> None:
        cmd = [RAY, "start", "--block", "--address", self.address, *node_args(self.temp)]
        log = (self.temp / f"worker{len(self.workers)}.log").open("w")
        self.workers.append(
            subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
        self.wait_cpus(1 + sum(w.poll() is None for w in self.workers))

    def kill_worker(self) -> None:
        """The node fails: every process of the last worker node is killed at once (SIGKILL to its group)."""
        proc = self.workers[-1]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def wait_cpus(self, cpus: int, timeout: float = 120) -> None:
        """Until the cluster reports `cpus` CPUs (every node joined)."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"ray head exited: {(self.temp / 'head.log').read_text()[-2000:]}")
            cmd = [RAY, "status", "--address", self.address]
            run = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
            status = run.stdout
            found = re.search(r"/(\d+(?:\.\d+)?) CPU", status)
            if run.returncode == 0 and found and float(found.group(1)) == cpus:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {cpus} CPUs in {timeout} s: {status[-1500:]}")

    def stop(self) -> None:
        for proc in [*self.workers, self.head]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def node_args(temp: Path) -> list[str]:
    """One CPU, a small object store, loopback, and free ports instead of Ray's fixed defaults."""
    return [
        "--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", OBJECT_STORE,
        "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp),
        "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
    ]  # fmt: skip
