#!/usr/bin/env bash
# Installs what only the tests and benchmarks need, on top of scripts/install-deps.sh (which scripts/test runs
# first): the reference proxy, the load generator and the instruction counter of bench/proxy, and the browser of
# the dashboard's tests. Starts no service, kills nothing, and leaves no service it installed enabled
# (scripts/lib/apt.sh). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh

APT_PACKAGES=(
  nginx     # bench/proxy: the reference proxy and upstream, each run from a configuration of its own
  wrk       # bench/proxy: the load
  valgrind  # bench/proxy/instructions.py: instructions per request
  chromium  # tests/dashboard: the browser Playwright drives (executable_path; Playwright downloads none)
  postgresql  # tests/support/postgres.py and bench: a PostgreSQL of their own, initdb/pg_ctl as user postgres
)

apt_install "${APT_PACKAGES[@]}"
apt_service_off nginx-common nginx nginx.service \
  "its default site listens on :80 on every interface; the benchmarks start their own nginx on loopback"
apt_service_off postgresql-common postgresql postgresql.service \
  "Debian's cluster listens on 5432; the tests and benchmarks start their own PostgreSQL in a temporary directory"
