#!/usr/bin/env bash
# Builds the super-peer image with podman and no image registry, then (with --smoke) starts it.
#
#   deploy/build-image.sh            base image + wheelhouse + image (localhost/p2pml-superpeer:dev)
#   deploy/build-image.sh --smoke    ... then run it with only a loopback interface: a synthetic
#                                    origin and the embedded tracker in the same container, the
#                                    super-peer as uid 10001 on a read-only root filesystem, and
#                                    curl-like checks of /healthz and /readyz from inside
#
# The base is made from Debian's packages: mmdebstrap writes a minimal bookworm root filesystem
# with python3 and python3-venv (from the host's apt sources), and `podman import` turns it into
# localhost/p2pml-debian-base:bookworm. Python packages come from a wheelhouse built on the host
# (build/wheels, pinned by constraints.txt), mounted into the build, so the build itself needs no
# index. Needs root (or a working rootless podman) and: apt-get install podman buildah mmdebstrap runc
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${SUITE:-bookworm}"
BASE="${BASE:-localhost/p2pml-debian-base:$SUITE}"
TAG="${TAG:-localhost/p2pml-superpeer:dev}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# Where this was written (a VM with cgroup v1 + v2 "hybrid" mounts and no CAP_SYS_RESOURCE),
# crun refuses hybrid cgroups and podman's default rlimits exceed the hard limits: runc with
# rlimits at or below the current ones works. Override with RUNTIME=crun / ULIMITS="".
RUNTIME="${RUNTIME:-$(command -v runc >/dev/null && echo runc || echo crun)}"
ULIMITS="${ULIMITS---ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=4096:4096}"
cd "$ROOT"

if ! podman image exists "$BASE"; then
  echo "== base: mmdebstrap $SUITE (minbase + python3-venv) -> $BASE"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --aptopt='Apt::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$work/rootfs.tar"
  podman import --change 'CMD ["/bin/bash"]' "$work/rootfs.tar" "$BASE"
fi

echo "== wheelhouse: build/wheels"
mkdir -p build/wheels
"$PYTHON" -m pip wheel -q --disable-pip-version-check -c constraints.txt \
  --wheel-dir build/wheels ".[fast]" "setuptools>=68" wheel

echo "== image: $TAG"
podman --runtime "$RUNTIME" build $ULIMITS --network none --volume "$ROOT/build/wheels:/wheels:ro" \
  --build-arg BASE="$BASE" \
  --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links /wheels" \
  -f deploy/Dockerfile -t "$TAG" .
podman image ls "$TAG"

if [ "${1:-}" != "--smoke" ]; then
  exit 0
fi

echo "== smoke: $TAG with --network none (loopback only), uid 10001, read-only root"
conf="$(mktemp -d)"
cat > "$conf/superpeer.toml" <<'EOF'
[superpeer]
workers = 2
listen = "127.0.0.1:9464"
[defaults]
trackers = ["ws://127.0.0.1:8000"]
ice_addresses = ["127.0.0.1"]
ice_port_range = [40000, 40099]
[[stream]]
name = "live"
url = "http://127.0.0.1:8081/master.m3u8"
EOF
cat > "$conf/smoke.sh" <<'EOF'
set -eu
python3 - <<'PY' &
import asyncio
from p2pml_py.testing.origin import SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
async def main():
    async with SyntheticOrigin(port=8081, live=True), TrackerServer(port=8000):
        await asyncio.Event().wait()
asyncio.run(main())
PY
p2pml-py superpeer --config /etc/p2pml/superpeer.toml --log-format json 2>/tmp/superpeer.log &
sp=$!
python3 - <<'PY'
import json, time, urllib.request, urllib.error, os
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:9464" + path, timeout=2) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
deadline = time.monotonic() + 60
while True:
    try:
        status, body = get("/healthz")
        break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.5)
print("healthz", status, body)
while True:
    status, body = get("/readyz")
    if status == 200 or time.monotonic() > deadline: break
    time.sleep(0.5)
print("readyz", status, body)
print("uid", os.getuid(), "gid", os.getgid())
try:
    open("/opt/p2pml/x", "w")
    print("root filesystem: writable")
except OSError as exc:
    print("root filesystem:", exc.strerror)
assert status == 200, body
PY
kill -TERM "$sp"
wait "$sp"
echo "superpeer exited with $?"
grep -o '"event": "superpeer_stopped"[^}]*' /tmp/superpeer.log || true
EOF
chmod 755 "$conf" && chmod 644 "$conf"/*  # readable by uid 10001
podman --runtime "$RUNTIME" run $ULIMITS --rm --network none --read-only --tmpfs /tmp --user 10001:10001 \
  --volume "$conf:/etc/p2pml:ro" --entrypoint /bin/sh "$TAG" /etc/p2pml/smoke.sh
rm -rf "$conf"
