#!/usr/bin/env bash
# Installs what aerodrome needs on a Debian 12 host: the host tools (apt) and the Python environment (.venv).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  runc catatonit skopeo umoci docker-registry  # machines and images
  busybox-static                               # the tests' tiny images
  debootstrap                                  # aerodrome images build-mcp: the Debian userland
  iproute2 iptables nftables                   # machine networks
  e2fsprogs util-linux                         # volumes: mkfs.ext4, resize2fs, losetup
  procps psmisc                                # ps, fuser
  nginx-light wrk valgrind                     # the edge benchmarks: reference proxy, load, instructions
  gcc libc6-dev python3-dev                    # the edge's data path, compiled by mypyc
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "aerodrome: missing packages ${missing[*]}; run this script as root" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages would start their own services; aerodrome runs what it needs itself.
for svc in docker-registry nginx; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
pkill -x registry 2>/dev/null || true
pkill -x nginx 2>/dev/null || true

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Reinstall only when the declared dependencies changed since the last install.
stamp=.venv/.aerodrome-deps
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
# The edge's per-request modules, compiled (a no-op while they are unchanged); without it they run as plain Python.
.venv/bin/aerodrome build-edge || echo "aerodrome: the edge will run as plain Python" >&2
