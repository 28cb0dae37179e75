#!/usr/bin/env bash
# OpenAPI-driven fuzz of the whole REST API (README, "Fuzzing"): schemathesis
# reads `GET /api/openapi.json` of a real `runeflow api` and sends generated
# valid and invalid requests to every operation, with the bearer token. It
# fails on any 5xx answer (`not_a_server_error`) and on an answer whose
# status code is not documented for that operation (`status_code_conformance`).
#
# The API runs on a free port with a database (runeflow_api_fuzz, made anew)
# and a Redis prefix of its own, on the machine's PostgreSQL and Redis
# (PGHOST_ADDR/PGPORT/REDIS_PORT as in scripts/services.sh), and from an
# empty temporary folder (git remotes that are relative paths resolve there).
# A worker runs too, so executions finish. The git routes are left out: a
# generated remote could name a real host, and this fuzz sends nothing
# beyond loopback (tests/git*.rs cover them against local repositories).
#
#   bash scripts/api_fuzz.sh                      # ~1 minute
#   API_FUZZ_EXAMPLES=200 bash scripts/api_fuzz.sh  # longer
#
# Settings: API_FUZZ_EXAMPLES (examples per operation, 25), API_FUZZ_MAX_TIME
# (seconds, 90), API_FUZZ_SEED (random when unset), RUNEFLOW_BIN (the debug
# binary, built when absent). schemathesis is installed (pinned) into a venv
# under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${API_FUZZ_EXAMPLES:-25}
MAX_TIME=${API_FUZZ_MAX_TIME:-90}
: "${PGHOST_ADDR:=127.0.0.1}"
: "${PGPORT:=5432}"
: "${REDIS_PORT:=6379}"

log() { printf '[api-fuzz] %s\n' "$*" >&2; }

# ---- schemathesis -----------------------------------------------------------------
VENV="$ROOT/target/api-fuzz-venv"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV" >&2 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    python3 -m venv "$VENV" >&2
  }
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi

# ---- the API ----------------------------------------------------------------------
if [ -n "${RUNEFLOW_BIN:-}" ]; then
  BIN=$(realpath "$RUNEFLOW_BIN")
else
  cargo build --locked --bin runeflow >&2
  BIN="$ROOT/target/debug/runeflow"
fi

WORK=$(mktemp -d /tmp/runeflow-api-fuzz.XXXXXX)
API_PID=""
WORKER_PID=""
cleanup() {
  set +e
  for pid in $API_PID $WORKER_PID; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $API_PID $WORKER_PID; do wait "$pid" 2>/dev/null; done
  [ -n "${API_FUZZ_KEEP:-}" ] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

DB=runeflow_api_fuzz
psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST_ADDR" -p "$PGPORT" -U postgres -d postgres \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="postgres://postgres@$PGHOST_ADDR:$PGPORT/$DB"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RUNEFLOW_REDIS_PREFIX="apifuzz$$"
export RUNEFLOW_API_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# Secrets can be written (PUT /api/config/{key} with "secret": true).
export RUNEFLOW_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export RUNEFLOW_BIND="127.0.0.1:$PORT"
export RUNEFLOW_PYTHON=${RUNEFLOW_PYTHON:-/usr/bin/python3}
export RUST_LOG=${RUST_LOG:-info,sqlx=warn}
export NO_COLOR=1

cd "$WORK"
"$BIN" init > init.log 2>&1
"$BIN" api > api.log 2>&1 &
API_PID=$!
"$BIN" worker > worker.log 2>&1 &
WORKER_PID=$!
for _ in $(seq 1 200); do
  curl -fsS "http://$RUNEFLOW_BIND/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$RUNEFLOW_BIND/readyz" >/dev/null || { log "API not ready"; cat api.log >&2; exit 1; }

# A workflow, so that executions and workflow look-ups have something to find.
mkdir -p ws
cat > ws/hello.py <<'EOF'
from runeflow import workflow

@workflow(timeout=5)
def hello(name: str = "world") -> dict:
    return {"greeting": f"hello {name}"}
EOF
RUNEFLOW_URL="http://$RUNEFLOW_BIND" "$BIN" push ws > push.log 2>&1

# ---- the fuzz ---------------------------------------------------------------------
seed=()
[ -n "${API_FUZZ_SEED:-}" ] && seed=(--seed "$API_FUZZ_SEED")
log "fuzzing http://$RUNEFLOW_BIND/api/openapi.json ($EXAMPLES examples per operation, at most ${MAX_TIME}s)"
set +e
"$VENV/bin/schemathesis" run "http://$RUNEFLOW_BIND/api/openapi.json" \
  --url "http://$RUNEFLOW_BIND" \
  -H "Authorization: Bearer $RUNEFLOW_API_TOKEN" \
  --checks not_a_server_error,status_code_conformance \
  --exclude-path-regex '^/api/git/' \
  --phases examples,coverage,fuzzing \
  --max-examples "$EXAMPLES" \
  --max-time "$MAX_TIME" \
  --request-timeout 20 \
  --workers 2 \
  --no-color \
  --suppress-health-check all \
  --report junit --report-dir "$WORK/report" \
  "${seed[@]}"
rc=$?
set -e
# schemathesis exits non-zero for its own internal errors too (a hypothesis
# "AST constructor recursion depth mismatch" was seen once in the coverage
# phase). The JUnit report tells them apart: only <failure>s, answers the
# API gave, fail this script; an internal error is reported and tolerated.
if [ "$rc" != 0 ]; then
  verdict=$(python3 - "$WORK"/report/junit-*.xml <<'PY'
import sys, xml.etree.ElementTree as ET
failures = errors = 0
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    failures += len(root.findall(".//failure"))
    errors += len(root.findall(".//error"))
print("fail" if failures or not errors else "internal")
PY
  ) || verdict=fail
  if [ "$verdict" = internal ]; then
    log "schemathesis had internal errors only (see above); no failing answer from the API"
    rc=0
  fi
fi
# Belt and braces: any 5xx the API logged (a panic, an error it turned into 500).
if grep -E '" 5[0-9][0-9] |status=5[0-9][0-9]|panicked|request failed' api.log >/dev/null; then
  log "the API logged server errors:"
  grep -E '" 5[0-9][0-9] |status=5[0-9][0-9]|panicked|request failed' api.log | head -20 >&2
  rc=1
fi
if [ "$rc" != 0 ]; then
  log "failed; API log: $WORK/api.log (API_FUZZ_KEEP=1 keeps it)"
fi
exit "$rc"
