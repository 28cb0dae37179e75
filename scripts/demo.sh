#!/usr/bin/env bash
# The main job, end to end on this machine: start PostgreSQL and Redis when
# needed, build, `runeflow init`, start `runeflow api`, push examples/ and
# list the workflows found in it. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_services

cargo build --release --locked --bin runeflow
bin=target/release/runeflow

ensure_database runeflow_demo
export DATABASE_URL="postgres://postgres@$PGHOST_ADDR:$PGPORT/runeflow_demo"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RUNEFLOW_REDIS_PREFIX=runeflow_demo
export RUNEFLOW_API_TOKEN="demo-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export RUNEFLOW_BIND="127.0.0.1:$port"
api="http://$RUNEFLOW_BIND"

"$bin" init
"$bin" api &
api_pid=$!
trap 'kill $api_pid 2>/dev/null; wait $api_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$api/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

auth=(-H "Authorization: Bearer $RUNEFLOW_API_TOKEN")
(cd examples && find . -type f ! -name '*.pyc' | sed 's|^\./||' | sort) | while read -r path; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "${auth[@]}" -X PUT --data-binary "@examples/$path" "$api/api/files/$path")
  echo "PUT $path -> $code"
done
echo "workflows:"
curl -fsS "${auth[@]}" "$api/api/workflows" | python3 -m json.tool
