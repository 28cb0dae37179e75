#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install what is missing,
# build, start `runeflow dev` (which runs a private PostgreSQL and Redis from
# the system binaries), push examples/ (a workflow importing a helper
# package), run the workflow, print its result, and stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

# Binaries only: `runeflow dev` starts its own private servers.
[ -n "$(pg_bin)" ] || apt_install postgresql postgresql-client
command -v redis-server >/dev/null || apt_install redis-server
ensure_python

cargo build --release --locked --bin runeflow
bin=target/release/runeflow

work=$(mktemp -d /tmp/runeflow-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
unset DATABASE_URL REDIS_URL
# Children run under uids of their own when run as root: they need an
# interpreter every user can read (Debian's, not one under /root).
if [ -x /usr/bin/python3 ]; then export RUNEFLOW_PYTHON="${RUNEFLOW_PYTHON:-/usr/bin/python3}"; fi
export RUNEFLOW_BIND="127.0.0.1:$port" RUNEFLOW_DEV_DIR="$work" RUST_LOG=warn
"$bin" dev > "$work/dev.log" 2>&1 &
dev_pid=$!
cleanup() {
  kill -INT "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  grep -q "runeflow dev: API on" "$work/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$work/dev.log"; exit 1; }
  sleep 0.1
done
line=$(grep "runeflow dev: API on" "$work/dev.log")
api=$(echo "$line" | sed -E 's/.*API on (http:[^ ]+) .*/\1/')
token=$(echo "$line" | sed -E 's/.*token ([^ ]+) .*/\1/')
echo "$line"
export RUNEFLOW_URL="$api" RUNEFLOW_API_TOKEN="$token"

"$bin" push examples
"$bin" workflows
echo "running workflow 'hello' with name=Ada times=2:"
"$bin" run hello -p name=Ada -p times=2
