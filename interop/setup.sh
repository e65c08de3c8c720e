#!/usr/bin/env bash
# Installs what the browser interop harness needs, on a fresh Debian 12, as root. Idempotent:
# re-running only does what is missing. Needs the network (apt, npm), so run it BEFORE entering
# a network namespace (scripts/test does).
#   - Debian packages: chromium (driven by Playwright through executable_path), ffmpeg (makes the
#     test stream), nodejs + npm (the pinned npm packages; the npm bittorrent-tracker)
#   - npm ci --ignore-scripts in interop/ (hls.js, Shaka Player, p2p-media-loader 2.3.1 + 2.2.2,
#     bittorrent-tracker). package.json and package-lock.json here are symlinks to the copies the
#     wheel ships (p2pml_py/harness/web/); an installed package runs `p2pml-py harness setup`
#     instead, which installs the same lock into a cache.
#   - the Python playwright package in the project's venv, if it is missing
#   - the build backend (pinned setuptools + wheel) in interop/.cache/wheelhouse, so that
#     tests/interop/test_wheel.py can build the wheel inside a network namespace
#   - the test stream in interop/.cache/stream (python -m p2pml_py.harness.stream)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${P2PML_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "interop/setup.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Same stamp as scripts/test, so the two never reinstall each other's node_modules.
lock_hash="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$HERE/node_modules/.p2pml-lock" 2>/dev/null)" != "$lock_hash" ]; then
  echo "interop/setup.sh: npm ci --ignore-scripts"
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$HERE/node_modules/.p2pml-lock"
fi

if ! "$PY" -c "import playwright" 2>/dev/null; then
  echo "interop/setup.sh: pip install playwright (never 'playwright install': Debian's chromium is used)"
  "$PY" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" playwright
fi

# pyproject.toml [build-system] requires setuptools>=68 and wheel; pinned here for repeatable builds.
wheelhouse="$HERE/.cache/wheelhouse"
build_backend=(setuptools==80.9.0 wheel==0.45.1)
if [ "$(ls "$wheelhouse"/setuptools-80.9.0-*.whl "$wheelhouse"/wheel-0.45.1-*.whl 2>/dev/null | wc -l)" != 2 ]; then
  echo "interop/setup.sh: pip download ${build_backend[*]} (the wheel test builds offline)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$wheelhouse" "${build_backend[@]}"
fi

(cd "$ROOT" && "$PY" -m p2pml_py.harness.stream)
echo "interop/setup.sh: ready ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
