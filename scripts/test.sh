#!/usr/bin/env bash
# The test command (README, .ci/run): starts PostgreSQL and Redis when they
# are not running, gives the tests a database of their own, then checks
# formatting, lints and runs every test. Each test creates its own database
# (rf_t_*) and Redis key prefix, so tests run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_services
ensure_moto
ensure_pyyaml

ensure_database runeflow_ci
# Databases left by tests that panicked in an earlier run.
for db in $(rf_psql -d postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'rf\_t\_%'"); do
  rf_psql -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done

export RUNEFLOW_TEST_DATABASE_URL="postgres://postgres@$PGHOST_ADDR:$PGPORT/runeflow_ci"
export RUNEFLOW_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RUST_BACKTRACE=0

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The shim's own tests (a Python stand-in of the worker); the Rust tests
# below run the same shim through the real worker.
python3 -m unittest discover -s python_shim/tests
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# OpenAPI-driven fuzz of the REST API (scripts/api_fuzz.sh): schemathesis
# against a real `runeflow api` + worker on their own database and Redis
# prefix; fails on any 5xx or undocumented status code. About a minute;
# skip it with RUNEFLOW_SKIP_API_FUZZ=1.
if [ "${RUNEFLOW_SKIP_API_FUZZ:-}" != 1 ]; then
  PGHOST_ADDR=$PGHOST_ADDR PGPORT=$PGPORT REDIS_PORT=$REDIS_PORT \
    API_FUZZ_MAX_TIME=${API_FUZZ_MAX_TIME:-60} bash scripts/api_fuzz.sh
fi
