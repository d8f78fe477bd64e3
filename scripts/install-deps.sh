#!/usr/bin/env bash
# Installs what `aerodrome serve` needs on a Debian 12 host: the host tools (apt) and the Python environment
# (.venv). What only the tests and benchmarks need is scripts/install-test-deps.sh. Starts no service, stops or
# kills nothing, and leaves no service it installed enabled (scripts/lib/apt.sh). Idempotent: a second run
# only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh

APT_PACKAGES=(
  runc catatonit skopeo umoci docker-registry  # machines and images; the embedded registry
  busybox-static                               # /bin/busybox, bind-mounted into every machine for its launcher
  iproute2 iptables                            # machine networks: ip, iptables-restore, ip6tables-restore
  e2fsprogs util-linux                         # volumes: mkfs.ext4, e2fsck, resize2fs, dumpe2fs; nsenter
  ca-certificates                              # image pulls over TLS (skopeo)
  debootstrap                                  # aerodrome images build-mcp: the Debian userland
  gcc libc6-dev python3-dev                    # the edge's data path, compiled by mypyc
  python3-venv                                 # .venv
  uuid-runtime curl                            # the README's quick start: uuidgen, curl
)

apt_install "${APT_PACKAGES[@]}"
apt_service_off docker-registry docker-registry docker-registry.service \
  "its default configuration listens on :5000 on every interface; aerodrome serve runs its own on 127.0.0.1:5000"
apt_service_off uuid-runtime uuidd "uuidd.socket uuidd.service"

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Reinstall only when the declared dependencies changed since the last install. The dev extra stays: it brings
# mypy, whose mypyc compiles the edge below; the bench extra brings `aerodrome bench`'s plots.
stamp=.venv/.aerodrome-deps
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev,bench]'
  echo "$wanted" > "$stamp"
fi
# The edge's per-request modules, compiled (a no-op while they are unchanged); without it they run as plain Python.
.venv/bin/aerodrome build-edge || echo "aerodrome: the edge will run as plain Python" >&2
