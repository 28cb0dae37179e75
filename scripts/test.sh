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
