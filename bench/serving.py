"""Benchmark: `rookery serve` vs `mlflow models serve --env-manager local`, the same registered model (CPU).

    .venv/bin/python bench/serving.py                  # 30 s per phase, concurrency 1 and 8
    .venv/bin/python bench/serving.py --quick          # under two minutes: a 1-epoch model, 640x480 photos, 5 s
    .venv/bin/python bench/serving.py --work /tmp/rs   # another cache folder (default .rookery/bench-serving)

The model is trained once per mode (--quick or not) and cached in the work folder with the photos; a first
--quick run spends about 40 s of its two minutes training, a first full run a few minutes.

What is compared, like for like:
  - one model: a yolov8n trained here by `rookery train` on a synthetic survey (tiles of 320 px), packaged as
    rookery's MLflow pyfunc model and registered in a SQLite tracking store under the work folder; both
    servers load that registered version (`models:/rookery/<n>`), ONNX Runtime on the CPU;
  - one protocol: POST /invocations with {"dataframe_split": {"columns": ["image"], "data": [[<base64 JPEG>]]}},
    one photo per request, no params (the model's defaults), JSON answers of one row per detection;
  - one worker process each (`--workers 1`), started together, on loopback; the load phases run one after
    the other (never two servers under load at once);
  - the same photos: synthetic 1024x768 survey JPEGs (640x480 with --quick; rookery.data.synthetic.make_scene,
    another seed than the training survey), cycled by every client;
  - the client: N threads, each with its own keep-alive httpx connection, sending back to back; after a warm-up
    (every thread has had an answer) a window of fixed length opens and the answers that arrive inside it count:
    throughput = answers / window, latency percentiles over those answers, and errors (any status but 200,
    or a failed connection).
Both servers answer one photo first and the benchmark checks that they return the same number of rows.
An extra row reports rookery's own API (POST /api/v1/predict, multipart, which also stores the history).
Prints a table and, last, `throughput_ratio_c8=<rookery /invocations req/s over mlflow's at concurrency 8>`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

PHOTO_SIZE = (1024, 768)
QUICK_PHOTO_SIZE = (640, 480)  # --quick: 4 tiles a photo instead of 12, so a short phase still sees many answers
CLASSES = 5  # the sea lion classes of the synthetic survey
TILE = 320  # training tiles and the model's inference tile (px)
BIN = Path(sys.executable).parent
# The trained model is cached between runs (training is most of a first --quick run); .rookery/ is git-ignored.
WORK = Path(__file__).resolve().parents[1] / ".rookery" / "bench-serving"


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=WORK, help=f"cache folder: model, photos, logs (default {WORK})")
    parser.add_argument("--retrain", action="store_true", help="train and register a new model even if one is cached")
    parser.add_argument("--quick", action="store_true", help="a tiny model and short phases: under two minutes")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (default 30, --quick 5)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before each phase (default 5/2)")
    parser.add_argument("--concurrency", default="1,8", help="client threads per phase, comma separated")
    parser.add_argument("--photos", type=int, default=4, help="distinct 1024x768 photos cycled by the clients")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10, --quick 1)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes, the same for both")
    parser.add_argument("--no-api", action="store_true", help="skip the extra rows of rookery's /api/v1/predict")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    args.size = QUICK_PHOTO_SIZE if args.quick else PHOTO_SIZE
    console = Console(width=150)
    return run(args, args.work.resolve(), console)


# --- the model and the photos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    tracking_uri: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/rookery/{self.version}"


def prepare_model(work: Path, args: argparse.Namespace, console: Console) -> Model:
    """Train, package and register a model with `rookery train` (cached in work/, one per --quick or full)."""
    kind = "quick" if args.quick else "full"
    folder = work / f"model-{kind}"
    cache = folder / "model.json"
    if cache.is_file() and not args.retrain:
        model = Model(**json.loads(cache.read_text()))
        console.print(f"model {model.uri} cached in {model.tracking_uri} (--retrain for a new one)")
        return model
    from rookery.config import Settings
    from rookery.data.dataset import BuildParams, build_dataset
    from rookery.data.synthetic import generate_survey
    from rookery.training.trainer import TrainParams, train

    shutil.rmtree(folder, ignore_errors=True)
    scenes, size, epochs = (2, (640, 480), args.epochs or 1) if args.quick else (6, (1024, 768), args.epochs or 10)
    console.print(f"training yolov8n with `rookery train`: {scenes} synthetic scenes {size[0]}x{size[1]}, "
                  f"tiles of {TILE} px, {epochs} epoch(s), CPU")  # fmt: skip
    t = time.perf_counter()
    survey = generate_survey(folder / "survey", images=scenes, size=size, num_classes=CLASSES, seed=0, workers=1)
    build_dataset(
        survey.out / "points.csv",
        survey.out / "train",
        survey.classes,
        folder / "dataset",
        masks=survey.out / "masks",
        params=BuildParams(tile=TILE, overlap=TILE // 10, split=(0.5, 0.5, 0.0), empty_fraction=0.0),
        workers=1,
    )
    settings = Settings(home=folder / "home")
    params = TrainParams(data=folder / "dataset", epochs=epochs, imgsz=TILE, batch=8, device="cpu", workers=0,
                         plots=False, experiment="bench-serving")  # fmt: skip
    result = train(params, settings)
    if result.model_version is None or result.onnx is None:
        sys.exit(f"training did not register an ONNX model: {result.problems}")
    model = Model(settings.tracking_uri, result.model_version)
    cache.write_text(json.dumps(model.__dict__))
    console.print(f"model {model.uri} in {model.tracking_uri}, ready in {time.perf_counter() - t:.0f} s")
    return model


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[bytes]:
    from rookery.data.synthetic import make_scene

    folder = folder / f"{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        if not path.is_file():
            scene = make_scene(size, num_classes=CLASSES, seed=7, index=i)
            cv2.imwrite(str(path), scene.photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
        photos.append(path.read_bytes())
    return photos


# --- the servers ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [c.replace("{port}", str(self.port)) for c in self.cmd]
        # A session of its own: `mlflow models serve` runs uvicorn as a child, and stop() ends the whole group.
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 240) -> float:
        assert self.proc is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)  # the group this script created for the server (start_new_session)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def make_servers(model: Model, work: Path, args: argparse.Namespace) -> tuple[Server, Server]:
    # This process's offline switches (YOLO_OFFLINE, caches outside ~: ensure_offline) go to both servers.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ROOKERY_", "MLFLOW_"))}
    base.update(PATH=f"{BIN}{os.pathsep}{base.get('PATH', '')}", MLFLOW_DISABLE_TELEMETRY="true", NO_COLOR="1")
    home = work / "serve-home"
    shutil.rmtree(home, ignore_errors=True)  # a fresh history each run
    rookery_env = {
        **base,
        "ROOKERY_HOME": str(home),
        "ROOKERY_TRACKING_URI": model.tracking_uri,
        "ROOKERY_MODEL_URI": model.uri,
        # One loopback client sending back to back is this benchmark, not abuse: without this the per-client limit
        # (120 a minute) answers most requests 429 and the bench measures the limiter.
        "ROOKERY_RATE_LIMIT_PER_MINUTE": "0",
    }
    mlflow_env = {**base, "MLFLOW_TRACKING_URI": model.tracking_uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    workers = str(args.workers)
    rookery = Server(
        "rookery serve",
        [sys.executable, "-m", "rookery", "serve", "--model", model.uri, "--host", "127.0.0.1", "--port", "{port}",
         "--workers", workers],
        rookery_env,
        "/ready",
        work / "rookery-serve.log",
    )  # fmt: skip
    mlflow = Server(
        "mlflow models serve",
        [str(BIN / "mlflow"), "models", "serve", "-m", model.uri, "--env-manager", "local", "--host", "127.0.0.1",
         "--port", "{port}", "--workers", workers],
        mlflow_env,
        "/ping",
        work / "mlflow-serve.log",
    )  # fmt: skip
    return rookery, mlflow


# --- the load ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str  # row label
    server: Server
    path: str
    kind: str  # "invocations" (JSON scoring protocol) or "api" (multipart /api/v1/predict)


@dataclass
class Result:
    latencies: list[float]
    errors: int
    seconds: float
    first_error: str = ""

    @property
    def answers(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def request_bodies(photos: list[bytes]) -> list[bytes]:
    return [
        json.dumps(
            {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(p).decode("ascii")]]}}
        ).encode()
        for p in photos
    ]


def send(client: httpx.Client, target: Target, i: int, bodies: list[bytes], photos: list[bytes]) -> httpx.Response:
    if target.kind == "invocations":
        return client.post(
            target.server.url + target.path,
            content=bodies[i % len(bodies)],
            headers={"Content-Type": "application/json"},
        )
    files = {"files": (f"photo-{i % len(photos)}.jpg", photos[i % len(photos)], "image/jpeg")}
    return client.post(target.server.url + target.path, files=files, data={"return_image": "false"})


def load(
    target: Target, concurrency: int, duration: float, warmup: float, bodies: list[bytes], photos: list[bytes]
) -> Result:
    """`concurrency` threads send back to back. The window of `duration` seconds opens once `warmup` seconds have
    passed and every thread has had an answer; the answers that arrive inside it count (steady state: requests
    in flight at either edge of the window do not skew the rate)."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    answered = threading.Semaphore(0)  # one release per thread, at its first answer
    window = {"open": float("inf"), "close": float("inf")}

    def worker(n: int) -> None:
        with httpx.Client(timeout=300) as client:
            i, first = n, True
            while (t := time.perf_counter()) < window["close"]:
                try:
                    response = send(client, target, i, bodies, photos)
                    error = "" if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
                except Exception as e:  # a failed connection, a timeout: an error of the server under test
                    error = f"{type(e).__name__}: {e}"
                done = time.perf_counter()
                i += concurrency
                if first:
                    first = False
                    answered.release()
                if window["open"] <= done <= window["close"]:
                    with lock:
                        if error:
                            errors.append(error)
                        else:
                            latencies.append(done - t)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for _ in threads:
        answered.acquire()
    time.sleep(max(0.0, started + warmup - time.perf_counter()))
    now = time.perf_counter()
    window["close"] = now + duration  # close first: a worker must never see an open window without its end
    window["open"] = now
    for thread in threads:
        thread.join()
    return Result(latencies, len(errors), duration, errors[0] if errors else "")


def check_same_answers(rookery: Server, mlflow: Server, bodies: list[bytes], console: Console) -> None:
    """Both servers must give the same number of detections for the same photo (same model, same protocol)."""
    rows = {}
    for server in (rookery, mlflow):
        r = httpx.post(server.url + "/invocations", content=bodies[0], headers={"Content-Type": "application/json"},
                       timeout=300)  # fmt: skip
        if r.status_code != 200:
            raise RuntimeError(f"{server.name} /invocations answered {r.status_code}: {r.text[:500]}")
        rows[server.name] = len(r.json()["predictions"])
    same = len(set(rows.values())) == 1
    console.print(f"detections in photo 0: {rows}" + ("" if same else "  [red]DIFFERENT ANSWERS[/red]"))


# --- the run -------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path, console: Console) -> float | None:
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROOKERY_HOME", str(work / "home"))  # Ultralytics' settings file lands there
    from rookery.offline import ensure_offline

    ensure_offline()
    t0 = time.perf_counter()
    model = prepare_model(work, args, console)
    photos = make_photos(work / "photos", args.photos, args.size)
    bodies = request_bodies(photos)
    rookery, mlflow = make_servers(model, work, args)
    results: dict[tuple[str, int], Result] = {}
    try:
        for server in (rookery, mlflow):
            server.start()
        for server in (rookery, mlflow):
            console.print(f"{server.name} ready in {server.wait_ready():.0f} s at {server.url} (log {server.log})")
        check_same_answers(rookery, mlflow, bodies, console)
        targets = [
            Target("mlflow models serve  POST /invocations", mlflow, "/invocations", "invocations"),
            Target("rookery serve  POST /invocations", rookery, "/invocations", "invocations"),
        ]
        if not args.no_api:
            targets.append(Target("rookery serve  POST /api/v1/predict (extra)", rookery, "/api/v1/predict", "api"))
        for c in args.levels:
            for target in targets:
                if args.quick and target.kind == "api" and c != max(args.levels):
                    continue  # --quick: the extra rows at the highest concurrency only
                result = load(target, c, args.duration, args.warmup, bodies, photos)
                results[(target.label, c)] = result
                console.print(f"  {target.label}, concurrency {c}: {result.rps:.2f} req/s, {result.errors} errors")
    finally:
        for server in (rookery, mlflow):
            server.stop()
    return report(results, args, console, time.perf_counter() - t0)


def report(results: dict[tuple[str, int], Result], args: argparse.Namespace, console: Console, took: float) -> float:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    table = Table(
        title=f"serving one registered model on {cores} CPU cores: {args.photos} photos {args.size[0]}x{args.size[1]}"
        f" JPEG, one per request, {args.workers} worker(s) per server, {args.duration:.0f} s per phase"
    )
    for col in ("server and endpoint", "concurrency", "answers", "errors", "req/s", "p50 ms", "p99 ms", "vs mlflow"):
        table.add_column(col, justify="left" if col == "server and endpoint" else "right")
    for c in args.levels:
        base = next((r for (label, cc), r in results.items() if cc == c and label.startswith("mlflow")), None)
        for (label, cc), r in results.items():
            if cc != c:
                continue
            vs = f"{r.rps / base.rps:.2f}x" if base is not None and base.rps and not label.startswith("mlflow") else ""
            errors = f"[red]{r.errors}[/red]" if r.errors else "0"
            table.add_row(label, str(c), str(r.answers), errors, f"{r.rps:.2f}", f"{r.pct(50):.0f}", f"{r.pct(99):.0f}",
                          vs)  # fmt: skip
        table.add_section()
    console.print(table)
    for (label, c), r in results.items():
        if r.first_error:
            console.print(f"first error of {label} at concurrency {c}: {r.first_error}")
    console.print(f"whole benchmark: {took:.0f} s")
    level = 8 if 8 in args.levels else max(args.levels)
    rk = results.get(("rookery serve  POST /invocations", level))
    ml = results.get(("mlflow models serve  POST /invocations", level))
    ratio = rk.rps / ml.rps if rk and ml and ml.rps else 0.0
    print(f"throughput_ratio_c{level}={ratio:.2f}", flush=True)
    return ratio


if __name__ == "__main__":
    main()
