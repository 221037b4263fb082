#!/usr/bin/env bash
# Build and run rookery's images with podman where no image registry is reachable (the development and CI
# machines: see ../shared/ENVIRONMENT.md, "Containers"). Run as root; idempotent: each step is skipped when done.
#
#   deploy/tools/podman-setup.sh            # podman installed and configured, base image built
#   deploy/tools/podman-setup.sh --print    # only print the base image's name (for scripts and tests)
#
# 1. Debian's podman, buildah, runc, netavark (+ iptables, which netavark needs) and debootstrap.
# 2. A containers.conf drop-in: runc (crun fails on these hosts' hybrid cgroups), cgroupfs (no systemd),
#    file events (no journald), and ulimits at most what the host allows (higher ones are refused by setrlimit).
# 3. A Debian bookworm minbase root file system from the host's own Debian mirror (debootstrap), imported as
#    localhost/rookery-debian:bookworm, and on it localhost/rookery-python:3.11-bookworm: Debian's Python 3.11
#    with venv and pip, the same Python as python:3.11-slim-bookworm (which cannot be pulled here).
#    Builds then substitute it for the Dockerfiles' public, digest-pinned base with `--from` (see deploy/README.md).
set -euo pipefail

DEBIAN_IMAGE=${ROOKERY_DEBIAN_IMAGE:-localhost/rookery-debian:bookworm}
PYTHON_IMAGE=${ROOKERY_PYTHON_IMAGE:-localhost/rookery-python:3.11-bookworm}
# The mirror apt already uses on this host (a registry-less machine still reaches its Debian mirror).
MIRROR=${ROOKERY_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

if [ "${1:-}" = "--print" ]; then
    echo "$PYTHON_IMAGE"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "podman-setup.sh: run as root (rootful podman: the rootless setup needs subuid ranges these hosts lack)" >&2
    exit 1
fi

# --- 1. packages ------------------------------------------------------------------------------------------
packages=(podman buildah runc conmon netavark aardvark-dns slirp4netns fuse-overlayfs uidmap catatonit
    debootstrap iptables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# --- 2. configuration (a drop-in: the distribution's containers.conf stays untouched) ----------------------
conf=/etc/containers/containers.conf.d/50-rookery.conf
mkdir -p "$(dirname "$conf")"
cat >"$conf.tmp" <<'CONF'
# Written by rookery's deploy/tools/podman-setup.sh.
[containers]
# Raising limits past these is refused on these hosts ("setrlimit ... Operation not permitted").
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
# Debian's podman package also ships a CNI bridge config, whose plugins are not installed: netavark, explicitly.
network_backend = "netavark"

[engine]
# crun fails here (cgroups hybrid mode); runc works.
runtime = "runc"
# No systemd as PID 1 in these machines, and no journald.
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
if cmp -s "$conf.tmp" "$conf"; then rm -f "$conf.tmp"; else mv "$conf.tmp" "$conf"; echo "wrote $conf"; fi

# --- 3. the base images --------------------------------------------------------------------------------------
if ! podman image exists "$DEBIAN_IMAGE"; then
    rootfs=$(mktemp -d /var/tmp/rookery-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap bookworm (minbase) from $MIRROR (about 40 s)"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
    # The image's apt reads the same mirror; no apt caches or lists in the image.
    echo "deb $MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# Bumped whenever the recipe below changes, so that a host set up by an older version of this script rebuilds it.
BASE_VERSION=2
have_version=$(podman image inspect --format '{{index .Config.Labels "org.rookery.base-version"}}' "$PYTHON_IMAGE" \
    2>/dev/null || true)
if [ "$have_version" != "$BASE_VERSION" ]; then
    echo "building $PYTHON_IMAGE"
    # What the Dockerfiles expect of python:3.11-slim-bookworm: `python` on PATH with venv and pip, CA certificates,
    # and pip allowed to install into the system Python, as there (MLflow's generated Dockerfile does; Debian's
    # EXTERNALLY-MANAGED marker would refuse it).
    # PIP_CERT: pip in a build reaches the package index through this host's TLS interception, whose CA is in the
    # host's bundle, mounted at build time (-v $CA_BUNDLE:$CA_BUNDLE:ro); on a normal network it changes nothing.
    context=$(mktemp -d)  # an empty build context: the Containerfile below copies nothing
    trap 'rm -rf "$context"' EXIT
    podman build --pull=never -t "$PYTHON_IMAGE" -f - "$context" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python-is-python3 ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
ENV PIP_CERT=$CA_BUNDLE LANG=C.UTF-8
LABEL org.rookery.base-version=$BASE_VERSION
CMD ["python"]
DOCKERFILE
    rm -rf "$context"
    trap - EXIT
fi
podman image exists "$PYTHON_IMAGE"
echo "ready: build with  podman build --pull=never --from $PYTHON_IMAGE -v $CA_BUNDLE:$CA_BUNDLE:ro ..."
