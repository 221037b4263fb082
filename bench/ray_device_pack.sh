#!/usr/bin/env bash
# Ray for the GPU machine, which has no network and no Ray, and takes at most 64 MiB of carried files.
#
#   bash bench/ray_device_pack.sh                 # here: build .raywhl/ray-bundle.tar.xz (~35 MB) and stop
#   bash bench/ray_device_pack.sh --install DIR   # there: unpack into DIR (a site folder for PYTHONPATH)
#
# The cp312 manylinux wheel of Ray is 79 MB; what `ray.init()` + Ray Data need is much less. Left out: the
# Java worker (ray/jars, 34 MB), the dashboard's web page (ray/dashboard/client/build), RLlib, Serve and the
# LLM library. Ray's own requirements that are pure Python or small (click, jsonschema and its parts,
# protobuf, PyYAML, requests, ...) ride along as wheels; --install unpacks only those whose module the
# machine cannot import already, so nothing the machine has is shadowed.
# Wheels come from pip's index (pip download, no install) or from RAY_WHEEL_DIR when the ray wheel is there.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=.raywhl
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--install" ]]; then
    site=${2:?usage: bench/ray_device_pack.sh --install DIR}
    mkdir -p "$site"
    tmp=$(mktemp -d)
    tar -xJf "$OUT/ray-bundle.tar.xz" -C "$tmp"
    cp -a "$tmp/ray/." "$site/"
    "$PY" - "$tmp/deps" "$site" <<'EOF'
import importlib.util, sys, zipfile
from pathlib import Path

deps, site = Path(sys.argv[1]), Path(sys.argv[2])
for wheel in sorted(deps.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith((".dist-info", ".data"))}
        modules = {t[:-3] if t.endswith(".py") else t for t in tops if not t.endswith(".pth")}
        if all(importlib.util.find_spec(m) is not None for m in modules):
            print(f"have {wheel.name.split('-')[0]}", flush=True)
            continue
        z.extractall(site)
        print(f"unpacked {wheel.name}", flush=True)
EOF
    rm -rf "$tmp"
    echo "Ray unpacked into $site: PYTHONPATH=$site:\$PYTHONPATH"
    exit 0
fi

VERSION=${RAY_VERSION:-$(.venv/bin/python -c 'import ray; print(ray.__version__)')}
WHEELS=$OUT/wheels
rm -rf "$OUT/stage" && mkdir -p "$WHEELS" "$OUT/stage/ray" "$OUT/stage/deps"
download() {  # cp312 manylinux wheels, no dependencies resolved (the list below is Ray's own)
    pip download --quiet --python-version 3.12 --only-binary=:all: --no-deps \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        --implementation cp -d "$WHEELS" "$@"
}
ray_wheel=$(ls "${RAY_WHEEL_DIR:-/nonexistent}"/ray-"$VERSION"-cp312-*.whl 2>/dev/null | head -1 || true)
if [[ -z "$ray_wheel" ]]; then
    download "ray==$VERSION"
    ray_wheel=$(ls "$WHEELS"/ray-"$VERSION"-cp312-*.whl | head -1)
fi
# The versions this venv runs Ray with (known to work together), else the newest.
deps=$(.venv/bin/python -c '
from importlib.metadata import PackageNotFoundError, version
for name in ["click", "filelock", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "attrs",
             "protobuf", "pyyaml", "requests", "urllib3", "idna", "certifi", "charset-normalizer", "packaging",
             "fsspec"]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
')
# shellcheck disable=SC2086  # one requirement per word
download $deps
cp "$WHEELS"/*.whl "$OUT/stage/deps/" && rm -f "$OUT"/stage/deps/ray-*.whl

"$PY" - "$ray_wheel" "$OUT/stage/ray" <<'EOF'
import sys, zipfile
from pathlib import Path

SKIP = ("ray/jars/", "ray/dashboard/client/build/", "ray/rllib/", "ray/serve/", "ray/llm/")
wheel, dest = sys.argv[1], Path(sys.argv[2])
kept = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(SKIP):
            continue
        z.extract(info, dest)
        mode = info.external_attr >> 16
        if mode:  # keep the executables (raylet, gcs_server) executable
            (dest / info.filename).chmod(mode & 0o777)
        kept += info.file_size
print(f"ray {wheel.rsplit('/', 1)[-1]}: {kept / 1e6:.0f} MB unpacked after leaving out {', '.join(SKIP)}")
EOF
tar -C "$OUT/stage" -cf - ray deps | xz -T0 -6 > "$OUT/ray-bundle.tar.xz"
rm -rf "$OUT/stage" "$WHEELS"
ls -l "$OUT/ray-bundle.tar.xz"
size=$(stat -c %s "$OUT/ray-bundle.tar.xz")
if (( size > 60 * 1024 * 1024 )); then
    echo "the bundle is over 60 MiB: leave more out" >&2
    exit 1
fi
