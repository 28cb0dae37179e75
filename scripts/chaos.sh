#!/usr/bin/env bash
# Chaos run (README, "Chaos run"): a private PostgreSQL and redis-server on
# free ports, `runeflow init`, one API and CHAOS_WORKERS workers (release
# binary), a workflow that appends its execution id to a file, and
# CHAOS_N executions. While they run, a random worker is SIGKILLed every
# CHAOS_KILL_EVERY seconds and restarted; Redis is restarted once and
# PostgreSQL once. At the end it prints a table and exits non-zero unless:
# every execution is final, successes = N, nothing is left pending, and
# each side effect happened once, except for executions whose worker was
# killed mid-run: a kill interrupts at most CHAOS_CONCURRENCY executions,
# each of which may then run once more (side effects <= attempts).
#
# Uses only the CLI, the REST API and the documented environment variables.
#
#   bash scripts/chaos.sh                 # N=5000, 3 workers
#   CHAOS_N=500 bash scripts/chaos.sh     # a short run
#
# Settings (environment): CHAOS_N (5000), CHAOS_WORKERS (3),
# CHAOS_CONCURRENCY (4 per worker), CHAOS_KILL_EVERY (4 s), CHAOS_SLEEP_MS
# (20: time each execution spends between its side effect and its return,
# the window a kill can hit), CHAOS_SETTLE_SECS (600: how long to wait for
# every execution to be final), CHAOS_PG_STOP_MODE (fast | immediate),
# CHAOS_REDIS_RESTART_AT (10) and CHAOS_PG_RESTART_AT (25): seconds after the
# first POST (refused POSTs are retried and counted), CHAOS_KEEP=1 keeps the temporary folder, RUNEFLOW_BIN (target/release/runeflow;
# built when absent), RUNEFLOW_PYTHON (/usr/bin/python3: children may run
# under other uids, which cannot read an interpreter under /root).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${CHAOS_N:-5000}
WORKERS=${CHAOS_WORKERS:-3}
CONCURRENCY=${CHAOS_CONCURRENCY:-4}
KILL_EVERY=${CHAOS_KILL_EVERY:-4}
SLEEP_MS=${CHAOS_SLEEP_MS:-20}
SETTLE_SECS=${CHAOS_SETTLE_SECS:-600}
REDIS_RESTART_AT=${CHAOS_REDIS_RESTART_AT:-10}
PG_RESTART_AT=${CHAOS_PG_RESTART_AT:-25}
PG_STOP_MODE=${CHAOS_PG_STOP_MODE:-fast}
BIN=${RUNEFLOW_BIN:-target/release/runeflow}
export RUNEFLOW_PYTHON=${RUNEFLOW_PYTHON:-/usr/bin/python3}

log() { printf '[chaos %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$BIN" ]; then
  log "building $BIN"
  cargo build --release --locked --bin runeflow >&2
fi
BIN=$(realpath "$BIN")
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PG_BIN" ] || { log "PostgreSQL server binaries not found (apt-get install postgresql)"; exit 1; }
command -v redis-server >/dev/null || { log "redis-server not found (apt-get install redis-server)"; exit 1; }

WORK=$(mktemp -d /tmp/runeflow-chaos.XXXXXX)
chmod 755 "$WORK"
# The children may run under their own uids: the side-effect file must be
# writable by any of them.
mkdir -m 0777 "$WORK/out"
chmod 0777 "$WORK/out"
OUT="$WORK/out/effects.txt"
: > "$OUT"
chmod 0666 "$OUT"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
API_PORT=$(free_port)

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

API_PID=""
REDIS_PID=""
declare -a WORKER_PIDS=()

cleanup() {
  set +e
  for pid in "${WORKER_PIDS[@]}" $API_PID; do
    kill -TERM "$pid" 2>/dev/null
  done
  sleep 1
  for pid in "${WORKER_PIDS[@]}" $API_PID; do
    kill -KILL "$pid" 2>/dev/null
  done
  [ -n "$REDIS_PID" ] && kill -TERM "$REDIS_PID" 2>/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1
  if [ -z "${CHAOS_KEEP:-}" ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

# ---- PostgreSQL --------------------------------------------------------------
mkdir -p "$WORK/pg" "$WORK/pgsock"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg" "$WORK/pgsock"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
start_pg() {
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w \
    -o "-p $PG_PORT -k $WORK/pgsock -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}
start_pg
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE runeflow" >/dev/null
log "PostgreSQL on 127.0.0.1:$PG_PORT ($WORK/pg)"

# ---- Redis (append-only file, as a deployment would keep its queue) -----------
mkdir -p "$WORK/redis"
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
    --appendonly yes --appendfsync everysec --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  log "redis-server did not start"
  return 1
}
start_redis
log "Redis on 127.0.0.1:$REDIS_PORT"

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/runeflow"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RUNEFLOW_API_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export RUNEFLOW_REDIS_PREFIX=chaos
export RUNEFLOW_BIND="127.0.0.1:$API_PORT"
export RUNEFLOW_URL="http://127.0.0.1:$API_PORT"
export RUNEFLOW_CONCURRENCY=$CONCURRENCY
export RUST_LOG=${RUST_LOG:-info,sqlx=warn}

"$BIN" init > "$WORK/init.log" 2>&1
"$BIN" api > "$WORK/api.log" 2>&1 &
API_PID=$!
for _ in $(seq 1 200); do
  curl -fsS "$RUNEFLOW_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$RUNEFLOW_URL/readyz" >/dev/null || { log "API not ready"; tail -20 "$WORK/api.log" >&2; exit 1; }

start_worker() {
  "$BIN" worker >> "$WORK/worker-$1.log" 2>&1 &
  WORKER_PIDS[$1]=$!
}
for i in $(seq 0 $((WORKERS - 1))); do start_worker "$i"; done

# ---- The workflow --------------------------------------------------------------
mkdir -p "$WORK/ws"
cat > "$WORK/ws/chaos_append.py" <<'EOF'
import os
import time

from runeflow import context, workflow


@workflow(name="chaos_append", timeout=60)
def chaos_append(out: str, sleep_ms: int = 0) -> dict:
    """Append this execution's id to `out` (the side effect), then linger."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (context.execution_id + "\n").encode())
    finally:
        os.close(fd)
    time.sleep(sleep_ms / 1000)
    return {"id": context.execution_id}
EOF
"$BIN" push "$WORK/ws" --prefix chaos > "$WORK/push.log" 2>&1

# ---- Push N executions (python3, 8 connections) ---------------------------------
START=$(date +%s.%N)
START_S=$(date +%s)
python3 - "$N" "$OUT" "$SLEEP_MS" "$WORK/ids.txt" "$WORK/post_errors.txt" > "$WORK/pusher.log" 2>&1 <<'EOF' &
import http.client, json, os, sys, threading, time
n, out, sleep_ms, ids_path, errors_path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
host, port = os.environ["RUNEFLOW_BIND"].rsplit(":", 1)
headers = {"Authorization": "Bearer " + os.environ["RUNEFLOW_API_TOKEN"], "Content-Type": "application/json"}
body = json.dumps({"workflow": "chaos_append", "parameters": {"out": out, "sleep_ms": sleep_ms}})
lock = threading.Lock()
ids, errors = [], []
left = [n]
def post():
    # Each ticket is retried until the API accepts it: a refused POST (API,
    # Redis or PostgreSQL restarting) is counted and sent again.
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        while True:
            try:
                conn.request("POST", "/api/executions", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 202:
                    with lock:
                        ids.append(json.loads(data)["id"])
                    break
                with lock:
                    errors.append(f"{time.time():.3f} {resp.status} {data[:200]!r}")
            except Exception as e:
                with lock:
                    errors.append(f"{time.time():.3f} {e!r}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
            time.sleep(0.2)
threads = [threading.Thread(target=post) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
open(ids_path, "w").write("".join(i + "\n" for i in ids))
open(errors_path, "w").write("".join(e + "\n" for e in errors))
print(f"accepted {len(ids)}, refused {len(errors)}")
EOF
PUSHER_PID=$!

# Counts the executions in each status through the REST API: "pending running final".
status_counts() {
  python3 - <<'EOF'
import http.client, json, os
host, port = os.environ["RUNEFLOW_BIND"].rsplit(":", 1)
headers = {"Authorization": "Bearer " + os.environ["RUNEFLOW_API_TOKEN"]}
conn = http.client.HTTPConnection(host, int(port), timeout=30)
counts = {}
for status in ("pending", "running"):
    total, cursor = 0, None
    while True:
        q = f"/api/executions?status={status}&limit=500" + (f"&cursor={cursor}" if cursor else "")
        conn.request("GET", q, headers=headers)
        page = json.loads(conn.getresponse().read())
        total += len(page["executions"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    counts[status] = total
print(counts["pending"], counts["running"])
EOF
}

# ---- Chaos while it runs ------------------------------------------------------------
KILLS=0
REDIS_RESTARTED=""
PG_RESTARTED=""
PUSHED_AT=""
DEADLINE=$(( $(date +%s) + SETTLE_SECS ))
: > "$WORK/chaos.log"
while true; do
  sleep "$KILL_EVERY"
  now=$(date +%s)
  if [ -z "$PUSHED_AT" ] && ! kill -0 "$PUSHER_PID" 2>/dev/null; then
    wait "$PUSHER_PID" || true
    PUSHED_AT=$now
    log "pusher: $(cat "$WORK/pusher.log")"
  fi
  counts=$(status_counts 2>/dev/null || echo "? ?")
  read -r pending running <<< "$counts"
  done_lines=$(wc -l < "$OUT")
  log "pending $pending, running $running, side effects $done_lines, kills $KILLS"
  if [ -n "$PUSHED_AT" ] && [ -n "$REDIS_RESTARTED" ] && [ -n "$PG_RESTARTED" ] \
     && [ "$pending" = 0 ] && [ "$running" = 0 ]; then
    break
  fi
  if [ "$now" -ge "$DEADLINE" ]; then
    log "gave up waiting after ${SETTLE_SECS}s"
    break
  fi
  if [ -z "$REDIS_RESTARTED" ] && [ "$now" -ge $((START_S + REDIS_RESTART_AT)) ]; then
    log "restarting Redis"
    echo "redis restart $(date +%s.%N)" >> "$WORK/chaos.log"
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill -TERM "$REDIS_PID"
    wait "$REDIS_PID" 2>/dev/null || true
    sleep 1
    start_redis
    REDIS_RESTARTED=1
    continue
  fi
  if [ -n "$REDIS_RESTARTED" ] && [ -z "$PG_RESTARTED" ] && [ "$now" -ge $((START_S + PG_RESTART_AT)) ]; then
    log "restarting PostgreSQL (-m $PG_STOP_MODE)"
    echo "postgres restart $(date +%s.%N)" >> "$WORK/chaos.log"
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m "$PG_STOP_MODE" -w stop >/dev/null
    sleep 1
    start_pg
    PG_RESTARTED=1
    continue
  fi
  victim=$((RANDOM % WORKERS))
  kill -KILL "${WORKER_PIDS[$victim]}" 2>/dev/null || true
  wait "${WORKER_PIDS[$victim]}" 2>/dev/null || true
  KILLS=$((KILLS + 1))
  echo "kill worker $victim pid ${WORKER_PIDS[$victim]} $(date +%s.%N)" >> "$WORK/chaos.log"
  start_worker "$victim"
done
END=$(date +%s.%N)

# ---- The table --------------------------------------------------------------------
set +e
python3 - "$N" "$OUT" "$WORK/ids.txt" "$WORK/post_errors.txt" "$KILLS" "$START" "$END" \
  "${REDIS_RESTARTED:-0}" "${PG_RESTARTED:-0}" <<'EOF'
import collections, http.client, json, os, sys
n = int(sys.argv[1]); out, ids_path, errors_path = sys.argv[2:5]
kills = int(sys.argv[5]); start, end = float(sys.argv[6]), float(sys.argv[7])
redis_restarts, pg_restarts = int(sys.argv[8] or 0), int(sys.argv[9] or 0)
accepted = [l.strip() for l in open(ids_path) if l.strip()]
refused = [l for l in open(errors_path) if l.strip()]
effects = collections.Counter(l.strip() for l in open(out) if l.strip())
host, port = os.environ["RUNEFLOW_BIND"].rsplit(":", 1)
headers = {"Authorization": "Bearer " + os.environ["RUNEFLOW_API_TOKEN"]}
conn = http.client.HTTPConnection(host, int(port), timeout=60)
rows, cursor = {}, None
while True:
    conn.request("GET", "/api/executions?limit=500" + (f"&cursor={cursor}" if cursor else ""), headers=headers)
    page = json.loads(conn.getresponse().read())
    for e in page["executions"]:
        rows[e["id"]] = e
    cursor = page.get("next_cursor")
    if not cursor:
        break
final = {"success", "failed", "timeout", "cancelled"}
status = collections.Counter(e["status"] for e in rows.values())
acc = set(accepted)
lost = acc - rows.keys()
unknown_rows = rows.keys() - acc
not_final = [i for i in rows if rows[i]["status"] not in final]
successes = sum(1 for i in acc & rows.keys() if rows[i]["status"] == "success")
failures = collections.Counter(
    (rows[i]["error"] or {}).get("type") for i in acc & rows.keys() if rows[i]["status"] != "success" and rows[i]["status"] in final)
once = sum(1 for i in acc if effects[i] == 1)
missing = [i for i in acc if effects[i] == 0 and i in rows and rows[i]["status"] == "success"]
dups = {i: c for i, c in effects.items() if c > 1}
extra = sum(c - 1 for c in dups.values())
over = [i for i, c in effects.items() if i in rows and c > rows[i]["attempt"]]
slots = int(os.environ["RUNEFLOW_CONCURRENCY"])
json.dump(list(rows.values()), open(os.path.join(os.path.dirname(ids_path), "rows.json"), "w"))
foreign = [i for i in effects if i not in rows]
reruns = sum(1 for i in acc if i in rows and rows[i]["attempt"] > 1)
elapsed = end - start
checks = [
    ("executions accepted (POST 202)", len(accepted), f"= N ({n})", len(accepted) == n),
    ("POSTs refused (then retried)", len(refused), "(figure)", True),
    ("accepted but no row (lost)", len(lost), "0", not lost),
    ("rows final", len(rows) - len(not_final), f"= rows ({len(rows)})", not not_final),
    ("left pending or running", len(not_final), "0", not not_final),
    ("successes", successes, f"= N ({n})", successes == n),
    ("side effect exactly once", once, f"= N ({n}) minus re-run ones", True),
    ("success without side effect", len(missing), "0", not missing),
    ("executions re-run (attempt > 1)", reruns, f"<= kills x slots ({kills * slots})", reruns <= kills * slots),
    ("executions with a repeated side effect", len(dups), f"<= re-run ({reruns})", len(dups) <= reruns),
    ("  side effects > attempts (ran twice)", len(over), "0", not over),
    ("extra side effects in all", extra, f"<= kills x slots ({kills * slots})", extra <= kills * slots),
    ("side effects of ids with no row", len(foreign), "0", not foreign),
    ("rows of refused POSTs", len(unknown_rows), f"<= refused ({len(refused)})", len(unknown_rows) <= len(refused)),
    ("  of them with a repeated side effect", sum(1 for i in unknown_rows if effects[i] > 1), "0",
     all(effects[i] <= 1 for i in unknown_rows)),
]
print()
print(f"chaos run: N={n}, {elapsed:.1f} s from first POST to all final ({len(accepted)/elapsed:.0f}/s), "
      f"{kills} worker SIGKILLs, Redis restarted {redis_restarts}x, PostgreSQL restarted {pg_restarts}x")
kinds = collections.Counter(r.split(" ", 2)[1][:40] for r in refused)
print(f"refused POSTs by answer: {dict(kinds)}")
def span(e):
    from datetime import datetime
    t = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return t(e["finished_at"]) - t(e["started_at"]) if e.get("finished_at") and e.get("started_at") else 0.0
rerun_spans = sorted(span(rows[i]) for i in acc if i in rows and rows[i]["attempt"] > 1)
if rerun_spans:
    print(f"re-run executions, first start to final: min {rerun_spans[0]:.1f} s, max {rerun_spans[-1]:.1f} s")
print(f"statuses: {dict(status)}; executions re-run (attempt > 1): {reruns}; failures by type: {dict(failures)}")
print()
print(f"| {'check':40} | {'value':>7} | {'expected':>22} | ok |")
print(f"|{'-'*42}|{'-'*9}|{'-'*24}|----|")
ok = True
for name, value, expected, good in checks:
    ok &= good
    print(f"| {name:40} | {value:>7} | {expected:>22} | {'yes' if good else 'NO':>2} |")
print()
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
rc=$?
if [ "$rc" != 0 ]; then
  log "logs: api $WORK/api.log, workers $WORK/worker-*.log (set CHAOS_KEEP=1 to keep them)"
fi
exit "$rc"
