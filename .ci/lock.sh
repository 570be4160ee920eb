#!/usr/bin/env bash
# Write the hashed locks that the image and the GitHub Action install with `pip install
# --require-hashes`, resolved by uv from pyproject.toml:
#
#   requirements.lock          flux-ci's dependencies ([project] dependencies), for every platform
#                              and Python >= 3.11 (uv's universal resolution: one file for the
#                              amd64 and arm64 images and the Action's runners);
#   requirements-build.lock    its build backend ([build-system] requires), to build flux-ci itself
#                              from source without fetching an unhashed setuptools.
#
#   .ci/lock.sh [DIR]          (default: the repository root; `make lock`)
#
# Only versions published before LOCK_RESOLVED_BEFORE are considered, so the same inputs give the
# same locks on any day: tests/test_lock.py runs this into a temporary directory and compares.
# Move the date forward (and run `make lock`) to take newer releases.
set -euo pipefail

LOCK_RESOLVED_BEFORE=2026-12-01T00:00:00Z

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(cd "${1:-$root}" && pwd)
uv=${UV:-$root/.venv/bin/uv}
[[ -x $uv ]] || uv=$(command -v uv) || { echo "lock: uv is missing (make install)" >&2; exit 3; }

compile() { # output input
  (cd "$root" && UV_CUSTOM_COMPILE_COMMAND="make lock" "$uv" --no-config --quiet pip compile \
    --generate-hashes --universal --python-version 3.11 --exclude-newer "$LOCK_RESOLVED_BEFORE" \
    --output-file "$1" "$2")
}

compile "$out/requirements.lock" pyproject.toml
# uv reads [build-system] requires from no file: they are handed over on stdin.
python3 - "$root/pyproject.toml" <<'PY' | compile "$out/requirements-build.lock" -
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    print("\n".join(tomllib.load(handle)["build-system"]["requires"]))
PY
