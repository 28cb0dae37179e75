#!/usr/bin/env bash
# scripts/compose-check.sh: end-to-end check of Runeflow's Docker deployment
# (compose.yaml + Dockerfile + .env.example) under a real Docker engine, on a
# machine that cannot reach Docker Hub.
#
#   scripts/compose-check.sh [PROJECT_DIR]   # default: the current directory (read only)
#
# Adapted from the steering repo's shared/tools/compose-check.sh for the
# hardened compose file: .env gets random POSTGRES_PASSWORD, REDIS_PASSWORD
# and RUNEFLOW_API_TOKEN (compose builds the URLs from them), and it adds
# checks for what the deployment promises (api on loopback only, a healthy
# worker with minimal capabilities, a crashed worker restarted, plain logs,
# example secrets refused).
#
# What it does, from scratch each run (images are reused):
#  1. Stand-in images. A Debian bookworm minbase root filesystem made with
#     debootstrap from the mirror apt is configured with (read from /etc/apt
#     at run time), imported as compose-check/debian:bookworm (built once).
#     From it, images tagged exactly as compose.yaml names them: postgres:16
#     (Debian's PostgreSQL; the official entrypoint's POSTGRES_USER /
#     POSTGRES_PASSWORD / POSTGRES_DB, initdb plus a socket-only temporary
#     server on first start) and redis:7 (runs as redis in /data, no config,
#     protected mode off, like the official image). An existing postgres:16 /
#     redis:7 that is not a stand-in (no compose-check.standin label) is used
#     as is.
#  2. runeflow:local. First the project's Dockerfile (`compose build init`);
#     offline that needs rust:1.95-bookworm, which cannot be pulled, so it is
#     reported as SKIP. With COMPOSE_CHECK_DOCKERFILE=1 a stand-in
#     rust:1.95-bookworm (the host's toolchain and crate cache, cargo offline)
#     and debian:bookworm-slim are made and the Dockerfile really is built
#     (slow: a full release build). Otherwise: the Dockerfile's runtime stage,
#     verbatim, FROM the local Debian base, with the host-built binary
#     (PROJECT/target/release/runeflow: `cargo build --release --locked
#     --bin runeflow` first) copied in.
#  3. The project tree (without target/ and .git) is copied to
#     $COMPOSE_CHECK_DIR/project, a .env is made from .env.example (random
#     secrets, RUNEFLOW_HTTP_PORT, a dummy RUNEFLOW_GIT_TOKEN), and
#     compose.yaml runs there unchanged (no override file is needed: the
#     stand-ins carry the exact tags) as compose project "runeflowcheck".
#     Checks: init order, healthchecks (worker included), api published on
#     127.0.0.1 only, /readyz, files API, executions, README's in-container
#     CLI commands, the worker's user and capabilities, logs without colour
#     codes, --scale worker=3, spread, docker kill mid-execution, docker stop
#     drains, a crashed worker process restarted, down + up keeps the
#     volumes, an idle worker stops promptly while Redis is down, example
#     secrets refused (a second project from .env.example as it is), no
#     uid shared by two worker replicas (child-uids-distinct), and
#     hardening checks: workflow code under a uid of the child range, a
#     workflow that SIGKILLs every pid it sees harms no neighbour, secrets
#     in the worker's environment and visible to workflow code,
#     password-less Redis, postgres healthcheck passing during first-start
#     init. COMPOSE_CHECK_HARDENING=0 leaves those out.
#  4. `compose down -v` (COMPOSE_CHECK_KEEP=1 leaves the stack up).
#
# Prints one line per check, then "N/M checks pass"; exits 0 only if all pass.
# Progress and build output: stderr and $COMPOSE_CHECK_DIR/logs/.
#
# Environment: COMPOSE_CHECK_DIR (/tmp/compose-check), COMPOSE_CHECK_PORT
# (18080), COMPOSE_CHECK_REBUILD_BASE=1 (redo debootstrap),
# COMPOSE_CHECK_DOCKERFILE=1, COMPOSE_CHECK_HARDENING=0, COMPOSE_CHECK_KEEP=1.
# Needs root, docker, docker-compose (v1) or `docker compose`, curl, jq;
# installs debootstrap with apt-get when missing. To get Docker on a Debian
# machine: apt-get install docker.io docker-compose, then start dockerd.

set -uo pipefail

PROJECT=$(cd "${1:-.}" && pwd) || { echo "no project directory" >&2; exit 2; }
WORK=${COMPOSE_CHECK_DIR:-/tmp/compose-check}
PORT=${COMPOSE_CHECK_PORT:-18080}
HARDENING=${COMPOSE_CHECK_HARDENING:-1}
NAME=runeflowcheck
BASE=compose-check/debian:bookworm
IMG=runeflow:local
PROJ=$WORK/project
LOGS=$WORK/logs
BASEURL=http://127.0.0.1:$PORT
START=$(date +%s)

PASS=0
TOTAL=0
pass() { PASS=$((PASS + 1)); TOTAL=$((TOTAL + 1)); printf 'PASS  %-28s %s\n' "$1" "${2:-}"; }
fail() { TOTAL=$((TOTAL + 1)); printf 'FAIL  %-28s %s\n' "$1" "${2:-}"; }
skip() { printf 'SKIP  %-28s %s\n' "$1" "${2:-}"; }
note() { printf '.. %s\n' "$*" >&2; }
die() { echo "compose-check: $*" >&2; exit 2; }

for tool in docker curl jq; do command -v "$tool" >/dev/null || die "$tool is missing"; done
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then COMPOSE=(docker-compose)
else die "neither 'docker compose' nor docker-compose is installed"; fi
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
[ -f "$PROJECT/compose.yaml" ] && [ -f "$PROJECT/Dockerfile" ] && [ -f "$PROJECT/.env.example" ] \
  || die "$PROJECT lacks compose.yaml, Dockerfile or .env.example"

mkdir -p "$WORK" "$LOGS"
dc() { "${COMPOSE[@]}" -p "$NAME" -f "$PROJ/compose.yaml" "$@"; }
# Containers of one service of the project (running only, or -a for all).
cids() { docker ps -q --no-trunc ${2:-} --filter "label=com.docker.compose.project=$NAME" \
  --filter "label=com.docker.compose.service=$1"; }
cid1() { cids "$1" -a | head -n1; }
# The logs quote apt's mirror (apt-get inside the image builds): replace every
# host named in /etc/apt by <apt-mirror> so that no host name is left behind.
scrub_logs() {
  local host
  for host in $(grep -h -o -E '[a-z]+://[^/ "]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
      | sed 's#^[a-z]*://##' | sort -u); do
    sed -i "s#${host//./\\.}#<apt-mirror>#g" "$LOGS"/*.log 2>/dev/null
  done
}
cleanup() {
  scrub_logs
  docker ps -aq --filter label=compose-check.probe=1 | xargs -r docker rm -f -v >/dev/null 2>&1
  if [ "${COMPOSE_CHECK_KEEP:-0}" = 1 ]; then note "stack left running (project $NAME, $PROJ)"; return; fi
  [ -f "$PROJ/compose.yaml" ] && dc down -v --remove-orphans >>"$LOGS/compose.log" 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. stand-in images ------------------------------------------------------

# The Debian mirror serving the plain "bookworm" suite, from apt's own sources.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; suites = ""; types = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); uris = $i }
          if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites = " " $i " " }
          if ($i ~ /^Types:/)  { types = $i " " }
        }
        if (types ~ /[ \t]deb[ \t]/ && suites ~ / bookworm /) { split(uris, u, " "); print u[1]; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) == "bookworm") { print $i; exit } }' "$f"
  done
}

is_standin() { [ -n "$(docker image inspect -f '{{index .Config.Labels "compose-check.standin"}}' "$1" 2>/dev/null)" ]; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  if have_image "$BASE" && [ "${COMPOSE_CHECK_REBUILD_BASE:-0}" != 1 ]; then
    note "reusing $BASE"; return 0
  fi
  command -v debootstrap >/dev/null || apt-get install -y debootstrap >"$LOGS/apt.log" 2>&1 \
    || { echo "apt-get install debootstrap failed (see $LOGS/apt.log)"; return 1; }
  local mirror rootfs=$WORK/rootfs
  mirror=$(find_mirror | head -n1)
  [ -n "$mirror" ] || { echo "no bookworm mirror in /etc/apt"; return 1; }
  note "debootstrap --variant=minbase bookworm (mirror from /etc/apt)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$LOGS/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed (see $LOGS/debootstrap.log)"; return 1; }
  # As in Debian's official images: services never start during package installs.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" --numeric-owner -cf - . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' --change 'LABEL compose-check.standin=debian' - "$BASE" >/dev/null \
    || { echo "docker import failed"; return 1; }
  rm -rf "$rootfs"
}

write_postgres_context() {
  local d=$WORK/images/postgres
  mkdir -p "$d"
  cat >"$d/Dockerfile" <<'EOF'
FROM compose-check/debian:bookworm
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/
ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data
RUN mkdir -p /var/run/postgresql "$PGDATA" \
 && chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql \
 && chmod 2777 /var/run/postgresql && chmod 1777 "$PGDATA"
VOLUME /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
LABEL compose-check.standin=postgres
EOF
  cat >"$d/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# Stand-in for the official postgres image's entrypoint: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB; the first start runs initdb and a temporary
# socket-only server (as the official image does), then `exec postgres`.
set -Eeuo pipefail
if [ "${1#-}" != "${1:-}" ]; then set -- postgres "$@"; fi
if [ "${1:-}" = postgres ]; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
  fi
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo 'Error: Database is uninitialized and superuser password is not specified.' >&2
      exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
      -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$POSTGRES_DB" != postgres ]; then
      psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    # Optional: keep the temporary server up longer, as the official image's
    # /docker-entrypoint-initdb.d scripts do.
    sleep "${STANDIN_INIT_DELAY:-0}"
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.'
  fi
  set -- "$1" -c listen_addresses='*' "${@:2}"
fi
exec "$@"
EOF
  chmod 755 "$d/docker-entrypoint.sh"
}

write_redis_context() {
  local d=$WORK/images/redis
  mkdir -p "$d"
  cat >"$d/Dockerfile" <<'EOF'
FROM compose-check/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
LABEL compose-check.standin=redis
EOF
  cat >"$d/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the official redis image's entrypoint: runs as user redis in
# /data; no config file and protected mode off (the official build patches
# that default), so any container on the network connects without a password.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  if [ "${1%.conf}" != "${1:-}" ]; then conf=$1; shift; set -- redis-server "$conf" --protected-mode no "$@"
  else set -- redis-server --protected-mode no "$@"; fi
fi
exec "$@"
EOF
  chmod 755 "$d/docker-entrypoint.sh"
}

# Builds a stand-in unless a real (unlabelled) image of that name exists.
standin() {
  local tag=$1 ctx=$2
  if have_image "$tag" && ! is_standin "$tag"; then note "using the real $tag"; return 0; fi
  docker build -t "$tag" "$ctx" >>"$LOGS/images.log" 2>&1
}

stage_images() {
  local err
  if ! err=$(build_base); then fail images "$err"; return 1; fi
  write_postgres_context
  write_redis_context
  note "building stand-ins postgres:16, redis:7"
  if standin postgres:16 "$WORK/images/postgres" && standin redis:7 "$WORK/images/redis"; then
    pass images "$BASE, postgres:16 ($(docker run --rm --entrypoint postgres postgres:16 --version 2>/dev/null | awk '{print $3}')), redis:7 ($(docker run --rm --entrypoint redis-server redis:7 --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p'))"
  else
    fail images "stand-in build failed (see $LOGS/images.log)"; return 1
  fi
}

# ---- 2. the runeflow image ---------------------------------------------------

copy_project() {
  rm -rf "$PROJ"
  mkdir -p "$PROJ"
  tar -C "$PROJECT" --exclude=./target --exclude=./.git --exclude=./.env -cf - . | tar -C "$PROJ" -xf -
  cmp -s "$PROJECT/compose.yaml" "$PROJ/compose.yaml" || die "compose.yaml copy differs"
  TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  SECRETKEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  PGPW=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  REDISPW=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  GITTOKEN=cc-git-secret-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
  # .env as the README says: the token, the password (also inside DATABASE_URL);
  # plus a host port of our own and a git token to see where it ends up.
  sed -e "s|^RUNEFLOW_API_TOKEN=.*|RUNEFLOW_API_TOKEN=$TOKEN|" \
      -e "s|^RUNEFLOW_SECRET_KEY=.*|RUNEFLOW_SECRET_KEY=$SECRETKEY|" \
      -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$PGPW|" \
      -e "s|^REDIS_PASSWORD=.*|REDIS_PASSWORD=$REDISPW|" \
      -e "s|^# *RUNEFLOW_HTTP_PORT=.*|RUNEFLOW_HTTP_PORT=$PORT|" \
      -e "s|^# *RUNEFLOW_GIT_TOKEN=.*|RUNEFLOW_GIT_TOKEN=$GITTOKEN|" \
      "$PROJECT/.env.example" >"$PROJ/.env"
  grep -q "^RUNEFLOW_HTTP_PORT=$PORT\$" "$PROJ/.env" || echo "RUNEFLOW_HTTP_PORT=$PORT" >>"$PROJ/.env"
  for v in RUNEFLOW_API_TOKEN RUNEFLOW_SECRET_KEY POSTGRES_PASSWORD REDIS_PASSWORD; do
    grep -q "^$v=" "$PROJ/.env" && ! grep -q "^$v=.*change-me" "$PROJ/.env" || die ".env.example does not set $v"
  done
}

# Stand-in rust:<ver>-bookworm: the host's toolchain and crate cache, offline.
build_rust_standin() {
  local ver=$1 tag=rust:$1-bookworm d=$WORK/images/rust tc reg
  if have_image "$tag" && ! is_standin "$tag"; then return 0; fi
  tc=$(readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$ver"*-x86_64-unknown-linux-gnu 2>/dev/null | head -n1)
  reg=${CARGO_HOME:-$HOME/.cargo}/registry
  [ -x "$tc/bin/cargo" ] && [ -d "$reg/cache" ] || { echo "no host toolchain $ver or crate cache"; return 1; }
  rm -rf "$d" && mkdir -p "$d/toolchain" "$d/registry"
  cp -al "$tc/bin" "$tc/lib" "$tc/libexec" "$d/toolchain/" 2>/dev/null || cp -a "$tc/bin" "$tc/lib" "$tc/libexec" "$d/toolchain/"
  cp -al "$reg/cache" "$reg/index" "$d/registry/" 2>/dev/null || cp -a "$reg/cache" "$reg/index" "$d/registry/"
  cat >"$d/Dockerfile" <<EOF
FROM $BASE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates curl git gcc g++ libc6-dev make \\
      pkg-config zlib1g-dev libssl-dev \\
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$ver CARGO_NET_OFFLINE=true
COPY toolchain /usr/local/rust
COPY registry /usr/local/cargo/registry
LABEL compose-check.standin=rust
EOF
  docker build -t "$tag" "$d" >>"$LOGS/images.log" 2>&1 || { echo "rust stand-in build failed"; return 1; }
  rm -rf "$d/toolchain" "$d/registry"
}

build_fallback() {
  local d=$WORK/images/runeflow bin=$PROJECT/target/release/runeflow
  if [ ! -x "$bin" ]; then
    note "no $bin: cargo build --release into $WORK/target"
    cargo build --release --locked --bin runeflow --manifest-path "$PROJECT/Cargo.toml" \
      --target-dir "$WORK/target" >"$LOGS/cargo.log" 2>&1 || { echo "cargo build failed"; return 1; }
    bin=$WORK/target/release/runeflow
  fi
  local newest
  newest=$(git -C "$PROJECT" log -1 --format=%ct 2>/dev/null || echo 0)
  [ "$(stat -c %Y "$bin")" -ge "$newest" ] || note "WARNING: $bin is older than the last commit"
  rm -rf "$d" && mkdir -p "$d"
  # The Dockerfile's runtime stage, verbatim but for its FROM and the COPY of
  # the binary from the build stage.
  awk -v base="$BASE" '/^FROM .* AS runtime/ { p = 1; print "FROM " base " AS runtime"; next } p' \
    "$PROJECT/Dockerfile" >"$d/Dockerfile"
  grep -q '^COPY --from=build /usr/local/bin/runeflow ' "$d/Dockerfile" \
    || { echo "Dockerfile's runtime stage not recognised"; return 1; }
  sed -i 's#^COPY --from=build /usr/local/bin/runeflow #COPY runeflow #' "$d/Dockerfile"
  echo 'LABEL compose-check.standin=runeflow' >>"$d/Dockerfile"
  cp "$bin" "$d/runeflow"
  docker build -t "$IMG" "$d" >>"$LOGS/images.log" 2>&1 || { echo "fallback image build failed"; return 1; }
  rm -f "$d/runeflow"
}

stage_runeflow_image() {
  local how err rustver out
  rustver=$(sed -n 's/^ARG RUST_VERSION=//p' "$PROJ/Dockerfile" | head -n1)
  local tried=1
  if [ "${COMPOSE_CHECK_DOCKERFILE:-0}" = 1 ]; then
    note "stand-in rust:$rustver-bookworm and debian:bookworm-slim for the Dockerfile"
    if err=$(build_rust_standin "$rustver"); then
      have_image debian:bookworm-slim || docker tag "$BASE" debian:bookworm-slim
    else fail dockerfile "$err"; tried=0; fi
  fi
  [ $tried = 1 ] && note "compose build init (the project's Dockerfile; a full cargo build when a rust image is there)"
  if [ $tried = 1 ] && dc build init >"$LOGS/dockerfile-build.log" 2>&1; then
    how="built from the project's Dockerfile"
    is_standin "rust:$rustver-bookworm" && how="$how (stand-in rust:$rustver-bookworm)"
    pass dockerfile "$how"
  else
    out=$(grep -E 'ERROR|error|Get "https|pull access|manifest' "$LOGS/dockerfile-build.log" 2>/dev/null | grep -v -i deprecated | head -n1)
    if [ $tried = 0 ]; then :
    elif grep -q -E 'registry-1\.docker\.io|pull access denied|no such host|dial tcp' "$LOGS/dockerfile-build.log"; then
      # The FROM whose image could not be pulled (offline: no Docker Hub).
      local from
      from=$(grep -E '^Step [0-9]+/[0-9]+ : FROM ' "$LOGS/dockerfile-build.log" | tail -n1 | sed 's/^Step [^:]*: //')
      skip dockerfile "'$from' cannot be pulled: ${out:-see $LOGS/dockerfile-build.log}"
    else
      fail dockerfile "${out:-build failed, see $LOGS/dockerfile-build.log}"
    fi
    note "fallback: the Dockerfile's runtime stage on $BASE with the host-built binary"
    err=$(build_fallback) || { fail runeflow-image "$err"; return 1; }
    how="Dockerfile runtime stage on $BASE + host binary"
  fi
  out=$(docker run --rm --entrypoint sh "$IMG" -c 'id -u; runeflow --version; python3 --version' 2>&1 | tr '\n' ' ')
  if [[ "$out" == 10001\ runeflow\ * ]]; then pass runeflow-image "$IMG: $how; uid/version: $out"
  else fail runeflow-image "$IMG does not run: $out"; fi
}

# ---- 3. the stack ------------------------------------------------------------

CODE=000
BODY=
# api METHOD PATH [JSON]: sets CODE and BODY.
api() {
  local args=(-sS --max-time 150 -X "$1" -H "Authorization: Bearer $TOKEN" -w '\n%{http_code}')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  local out
  out=$(curl "${args[@]}" "$BASEURL$2" 2>&1)
  CODE=${out##*$'\n'}
  BODY=${out%$'\n'*}
}
put_file() { # workspace path, local file
  local out
  out=$(curl -sS --max-time 30 -X PUT -H "Authorization: Bearer $TOKEN" --data-binary "@$2" \
    -w '\n%{http_code}' "$BASEURL/api/files/$1" 2>&1)
  CODE=${out##*$'\n'}
  BODY=${out%$'\n'*}
}
jqr() { jq -r "$1" <<<"$BODY" 2>/dev/null; }
ts() { date -d "$1" +%s.%N; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null; }
wait_health() { # service, seconds
  local c i
  for i in $(seq "$2"); do
    c=$(cids "$1" | head -n1)
    [ -n "$c" ] && [ "$(health "$c")" = healthy ] && return 0
    sleep 1
  done
  return 1
}
wait_ready() { local i; for i in $(seq "$1"); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$BASEURL/readyz")" = 200 ] && return 0; sleep 1; done; return 1; }
# Submits cc_calc without waiting; prints the id.
submit() { api POST /api/executions "{\"workflow\":\"cc_calc\",\"parameters\":{\"x\":$1,\"sleep\":$2}}"; jqr .id; }
# Waits until the execution is running; prints its worker.
running_on() { local i; for i in $(seq 100); do
  api GET "/api/executions/$1"
  [ "$(jqr .status)" = running ] && { jqr .worker; return 0; }
  sleep 0.2; done; return 1; }
# The worker container whose hostname (= short container id) starts the worker name.
container_of() { cids worker -a | grep "^${1%%-*}" | head -n1; }

write_workspace() {
  local d=$WORK/workspace/compose_check
  rm -rf "$WORK/workspace" && mkdir -p "$d"
  printf '"""compose-check: a helper package and workflows."""\n' >"$d/__init__.py"
  printf 'FACTOR = 2\n\n\ndef double(x: int) -> int:\n    return FACTOR * x\n' >"$d/mathx.py"
  cat >"$d/flows.py" <<'EOF'
import os
import signal
import socket
import time

from runeflow import workflow

from compose_check.mathx import double


@workflow(name="cc_calc", timeout=120)
def cc_calc(x: int = 21, sleep: float = 0.0) -> dict:
    time.sleep(sleep)
    return {"value": double(x), "host": socket.gethostname(), "uid": os.getuid()}
EOF
  cat >"$d/probe.py" <<'EOF'
import os
import socket

from runeflow import workflow

SECRETS = ("DATABASE_URL", "RUNEFLOW_API_TOKEN", "RUNEFLOW_GIT_TOKEN", "POSTGRES_PASSWORD",
           "RUNEFLOW_SECRET_KEY")


@workflow(name="cc_probe", timeout=60)
def cc_probe() -> dict:
    """What user code can reach: secrets in any readable /proc/*/environ, Redis."""
    seen = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                names = [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if b"=" in e]
        except OSError:
            continue
        for name in names:
            if name in SECRETS:
                seen.setdefault(name, []).append(int(pid))
    try:
        with socket.create_connection(("redis", 6379), timeout=3) as s:
            s.sendall(b"PING\r\nDBSIZE\r\n")
            redis = s.recv(200).decode(errors="replace").replace("\r\n", " ").strip()
    except OSError as e:
        redis = f"error: {e}"
    return {"own_env": sorted(k for k in os.environ if k in SECRETS), "proc_environ": seen,
            "redis": redis, "uid": os.getuid()}


@workflow(name="cc_secret", timeout=60)
def cc_secret() -> dict:
    """Reads a secret (RUNEFLOW_SECRET_KEY on the worker), prints and returns it."""
    from runeflow import context
    value = context.secret("CC_KEY")
    print("the key is", value)
    return {"value": value, "length": len(value)}


@workflow(name="cc_killer", timeout=60)
def cc_killer() -> dict:
    """A hostile neighbour: SIGKILL every other process it can see."""
    killed, refused = [], 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), signal.SIGKILL)
            killed.append(int(pid))
        except OSError:
            refused += 1
    return {"killed": killed, "refused": refused, "uid": os.getuid(), "ppid": os.getppid()}
EOF
}

stage_stack() {
  local c i ok detail
  note "compose up -d (project $NAME, port $PORT)"
  if dc up -d >"$LOGS/compose-up.log" 2>&1; then pass compose-up "postgres, redis, init, api, worker created"
  else fail compose-up "$(grep -i -E 'error|exited' "$LOGS/compose-up.log" | head -n1)"; fi

  # init: exited 0, and finished before api and worker started.
  c=$(cid1 init)
  local init_state init_exit init_end api_start worker_start
  init_state=$(docker inspect -f '{{.State.Status}}' "$c" 2>/dev/null)
  init_exit=$(docker inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null)
  init_end=$(docker inspect -f '{{.State.FinishedAt}}' "$c" 2>/dev/null)
  api_start=$(docker inspect -f '{{.State.StartedAt}}' "$(cid1 api)" 2>/dev/null)
  worker_start=$(docker inspect -f '{{.State.StartedAt}}' "$(cid1 worker)" 2>/dev/null)
  if [ "$init_state" = exited ] && [ "$init_exit" = 0 ] && [ -n "$api_start" ] && [ -n "$worker_start" ] \
     && awk -v e="$(ts "$init_end")" -v a="$(ts "$api_start")" -v w="$(ts "$worker_start")" 'BEGIN { exit !(e < a && e < w) }'; then
    pass init-order "init exited 0 at ${init_end:11:12}; api started ${api_start:11:12}, worker ${worker_start:11:12}"
  else
    fail init-order "init $init_state exit=$init_exit end=$init_end; api start=${api_start:-never}; worker start=${worker_start:-never}"
  fi

  for s in postgres redis api worker; do
    if wait_health "$s" 60; then pass "healthy-$s" "healthcheck: healthy"
    else fail "healthy-$s" "health=$(health "$(cid1 "$s")")"; fi
  done

  # The API is published on loopback only.
  local bound
  bound=$(docker port "$(cid1 api)" 8080/tcp 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "$bound" ] && ! grep -q -v '^127\.0\.0\.1:' <<<"$(docker port "$(cid1 api)" 8080/tcp)"; then
    pass api-loopback "8080/tcp published on $bound"
  else fail api-loopback "8080/tcp published on: ${bound:-nothing}"; fi

  # The worker: root with SETUID/SETGID/KILL only, no-new-privileges; the
  # others as the image's user.
  local wc wuser caps sec others
  wc=$(cid1 worker)
  wuser=$(docker inspect -f '{{.Config.User}}' "$wc")
  caps=$(docker inspect -f '{{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}' "$wc")
  sec=$(docker inspect -f '{{.HostConfig.SecurityOpt}}' "$wc")
  others="api=$(docker exec "$(cid1 api)" id -u 2>&1)"
  if [ "$wuser" = 0:0 ] && [[ "$caps" == *ALL*SETUID* ]] && [[ "$caps" == *SETGID* ]] && [[ "$caps" == *KILL* ]] \
     && [[ "$sec" == *no-new-privileges* ]] && [ "$others" = api=10001 ]; then
    pass worker-privileges "worker user $wuser, caps drop/add $caps, $sec; $others"
  else fail worker-privileges "worker user $wuser, caps $caps, $sec; $others"; fi

  wait_ready 30
  BODY=$(curl -sS --max-time 5 -w '\n%{http_code}' "$BASEURL/readyz" 2>&1)
  CODE=${BODY##*$'\n'}; BODY=${BODY%$'\n'*}
  if [ "$CODE" = 200 ]; then pass readyz "GET $BASEURL/readyz -> 200 $BODY"; else fail readyz "-> $CODE $BODY"; fi

  # Files API: a module, the package __init__, a workflow importing the module.
  write_workspace
  ok=1; detail=
  for f in __init__ mathx flows probe; do
    put_file "compose_check/$f.py" "$WORK/workspace/compose_check/$f.py"
    detail="$detail $f:$CODE/$(jqr .entity_type)"
    [ "$CODE" = 201 ] || ok=0
  done
  [ "$(jqr '.workflows[0].name')" = cc_probe ] || ok=0
  if [ $ok = 1 ]; then pass put-files "PUT compose_check/{__init__,mathx,flows,probe}.py ->$detail"
  else fail put-files "->$detail $(head -c 200 <<<"$BODY")"; fi

  api POST /api/executions '{"workflow":"cc_calc","parameters":{"x":21},"wait":60}'
  FIRST_ID=$(jqr .id)
  if [ "$CODE" = 200 ] && [ "$(jqr .status)" = success ] && [ "$(jqr .result.value)" = 42 ]; then
    pass execution "POST /api/executions wait -> 200 success, result.value=42 on $(jqr .worker)"
  else fail execution "-> $CODE $(head -c 300 <<<"$BODY")"; fi

  # README: the CLI from the image (exec in api; a one-off run on the network).
  local out1 out2 out3
  out1=$(dc exec -T api runeflow workflows 2>&1)
  out2=$(dc run --rm --no-deps -e RUNEFLOW_URL=http://api:8080 -v "$PROJ/examples:/examples:ro" api push /examples 2>&1 | grep -v -E '^(Creating|Starting)' | tail -n1)
  out3=$(dc exec -T api runeflow run hello -p name=Ada 2>&1)
  if grep -q '^cc_calc' <<<"$out1" && grep -q 'created' <<<"$out2" && grep -q 'Ada' <<<"$out3"; then
    pass readme-cli "exec api runeflow workflows; run --no-deps api push /examples ($out2); exec api runeflow run hello"
  else fail readme-cli "workflows: $(head -n1 <<<"$out1") | push: $out2 | run: $(tr '\n' ' ' <<<"$out3" | head -c 150)"; fi

  # A secret set through the API is sealed by the api, opened by the worker
  # for the workflow that asks, and stored back as ***.
  local secret_value
  secret_value=cc-secret-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
  api PUT /api/config/CC_KEY "{\"value\":\"$secret_value\",\"secret\":true}"
  local put_code=$CODE
  api POST /api/executions '{"workflow":"cc_secret","wait":60}'
  local dump
  dump=$(dc exec -T postgres pg_dumpall -U "${POSTGRES_USER:-runeflow}" 2>&1)
  if [ "$put_code" = 200 ] && [ "$(jqr .status)" = success ] && [ "$(jqr .result.value)" = '***' ] \
     && [ "$(jqr .result.length)" = "${#secret_value}" ] && [ "$(jqr '.config_read[0]')" = CC_KEY ] \
     && ! grep -q "$secret_value" <<<"$BODY" \
     && grep -q 'CC_KEY' <<<"$dump" && ! grep -q "$secret_value" <<<"$dump"; then
    pass secret-roundtrip "PUT secret -> $put_code; workflow read it (length ${#secret_value}), result and logs show ***; pg_dumpall ($(wc -c <<<"$dump") bytes) holds CC_KEY but not its value"
  else fail secret-roundtrip "PUT -> $put_code; $(head -c 300 <<<"$BODY")"; fi

  if [ "$HARDENING" = 1 ]; then
    local leaked
    leaked=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(cid1 worker)" 2>/dev/null \
      | sed -n 's/^\(RUNEFLOW_API_TOKEN\|RUNEFLOW_GIT_TOKEN\|RUNEFLOW_GIT_USERNAME\|POSTGRES_PASSWORD\)=.*/\1/p' | tr '\n' ' ')
    if [ -z "$leaked" ]; then pass worker-env "worker has no API token, git token or POSTGRES_PASSWORD"
    else fail worker-env "worker container environment holds: $leaked(from env_file: .env)"; fi
    api POST /api/executions '{"workflow":"cc_probe","wait":60}'
    local seen redis
    seen=$(jqr '.result.proc_environ | to_entries | map("\(.key)@pid\(.value | map(tostring) | join(","))") | join(" ")')
    redis=$(jqr .result.redis)
    if [ "$(jqr .status)" != success ]; then fail workflow-secrets "probe failed: $(head -c 200 <<<"$BODY")"
    elif [ -z "$seen" ]; then pass workflow-secrets "workflow code sees no secret in /proc/*/environ"
    else fail workflow-secrets "workflow code (uid $(jqr .result.uid)) reads from /proc/<pid>/environ: $seen"; fi
    if [[ "$redis" == +PONG* ]]; then fail redis-auth "workflow code reaches redis:6379 without a password: $redis"
    elif [ "$(jqr .status)" = success ]; then pass redis-auth "redis:6379 from workflow code: $redis"
    else fail redis-auth "probe failed"; fi
  fi

  if [ "$HARDENING" = 1 ]; then
    # Workflow code runs under a uid of the configured range, not as the
    # worker (root) nor as the image's runeflow user.
    local probe_uid
    probe_uid=$(jqr .result.uid)
    if [[ "$probe_uid" =~ ^[0-9]+$ ]] && [ "$probe_uid" -ge 70000 ] && [ "$probe_uid" -le 70999 ]; then
      pass child-users "workflow code runs as uid $probe_uid (RUNEFLOW_CHILD_UID_RANGE 70000-70999)"
    else fail child-users "workflow code runs as uid ${probe_uid:-unknown}"; fi
    # A workflow that SIGKILLs every process it sees, while a neighbour runs
    # on the same (single) worker: nothing dies, the neighbour succeeds.
    local neighbour restarts0 restarts1
    restarts0=$(docker inspect -f '{{.RestartCount}}' "$(cid1 worker)" 2>/dev/null)
    neighbour=$(submit 7 4)
    sleep 1
    api POST /api/executions '{"workflow":"cc_killer","wait":60}'
    local killed
    killed=$(jqr '.result.killed | length')
    api GET "/api/executions/$neighbour?wait=60"
    restarts1=$(docker inspect -f '{{.RestartCount}}' "$(cid1 worker)" 2>/dev/null)
    if [ "$(jqr .status)" = success ] && [ "$(jqr .attempt)" = 1 ] && [ "$killed" = 0 ] && [ "$restarts0" = "$restarts1" ]; then
      pass workflow-no-kill "SIGKILL of every visible pid from workflow code: 0 killed; neighbour success on attempt 1; worker restarts $restarts0 -> $restarts1"
    else fail workflow-no-kill "killer killed ${killed:-?} pids; neighbour status=$(jqr .status) attempt=$(jqr .attempt); worker restarts $restarts0 -> $restarts1"; fi
  fi

  if [ "$HARDENING" = 1 ]; then
    # compose.yaml's postgres healthcheck, run while the image's first-start
    # init (initdb, temporary socket-only server) is still going on: does it
    # already say healthy although TCP clients (init, api, worker) are refused?
    local hc pg during=unknown tcp=unknown
    hc=$(docker inspect -f '{{json .Config.Healthcheck.Test}}' "$(cid1 postgres)" 2>/dev/null)
    if [ "$(jq -r '.[0]' <<<"$hc" 2>/dev/null)" = CMD-SHELL ]; then
      pg=$(docker run -d -e POSTGRES_USER=runeflow -e POSTGRES_PASSWORD=x -e POSTGRES_DB=runeflow \
        -e STANDIN_INIT_DELAY=8 --label compose-check.probe=1 postgres:16)
      for i in $(seq 40); do
        docker logs "$pg" 2>&1 | grep -q 'CREATE DATABASE\|database system is ready' && break; sleep 0.25
      done
      docker exec "$pg" sh -c "$(jq -r '.[1]' <<<"$hc")" >/dev/null 2>&1 && during=healthy || during=unhealthy
      docker exec "$pg" pg_isready -h 127.0.0.1 >/dev/null 2>&1 && tcp=accepting || tcp=refused
      docker rm -f -v "$pg" >/dev/null 2>&1
      if [ "$during" = healthy ] && [ "$tcp" = refused ]; then
        fail pg-health-during-init "postgres healthcheck ($(jq -r '.[1]' <<<"$hc")) passes during first-start init while TCP is refused$(is_standin postgres:16 && echo ' (stand-in mimics the official entrypoint)')"
      else pass pg-health-during-init "during first-start init: healthcheck $during, TCP $tcp"; fi
    else fail pg-health-during-init "postgres healthcheck not CMD-SHELL: $hc"; fi
  fi

  # Three workers: distinct names, jobs spread.
  if dc up -d --scale worker=3 >"$LOGS/compose-scale.log" 2>&1 && sleep 2 && [ "$(cids worker | wc -l)" = 3 ]; then
    pass scale-3 "compose up -d --scale worker=3 -> 3 running worker containers"
  else fail scale-3 "$(cids worker | wc -l) running workers; $(grep -i error "$LOGS/compose-scale.log" | head -n1)"; fi
  sleep 2
  local ids=() workers hosts
  for i in $(seq 12); do ids+=("$(submit "$i" 2)"); done
  : >"$WORK/spread.tsv"
  for id in "${ids[@]}"; do
    api GET "/api/executions/$id?wait=90"
    jqr '[.status, .worker, .result.host, .result.uid] | @tsv' >>"$WORK/spread.tsv"
  done
  workers=$(awk -F'\t' '$1 == "success" { print $2 }' "$WORK/spread.tsv" | sort -u)
  ok=1; detail=
  for w in $workers; do
    c=$(container_of "$w")
    [ -n "$c" ] || ok=0
    detail="$detail ${w}->$(docker inspect -f '{{.Name}}' "$c" 2>/dev/null | tr -d /)"
  done
  hosts=$(awk -F'\t' '$1 == "success" { print $3 }' "$WORK/spread.tsv" | sort -u | wc -l)
  if [ "$(wc -w <<<"$workers")" = 3 ] && [ $ok = 1 ] && [ "$hosts" = 3 ]; then
    pass worker-names "3 distinct names, one per container:$detail"
  else fail worker-names "names seen: $(wc -w <<<"$workers"), hosts: $hosts;$detail"; fi
  detail=$(awk -F'\t' '{ n[$1 == "success" ? $2 : "NOT-" $1]++ } END { for (w in n) printf "%s=%d ", substr(w, 1, 12), n[w] }' "$WORK/spread.tsv")
  if [ "$(awk -F'\t' '$1 == "success"' "$WORK/spread.tsv" | wc -l)" = 12 ] && [ "$(wc -w <<<"$workers")" = 3 ]; then
    pass jobs-spread "12 executions (2 s each), per worker: $detail"
  else fail jobs-spread "per worker: $detail"; fi
  # uids are host-wide: no two worker replicas may run children under the
  # same one (their claims share the childuids volume).
  local shared_uids
  shared_uids=$(awk -F'\t' '$1 == "success" { print $4 "\t" $2 }' "$WORK/spread.tsv" | sort -u | cut -f1 | sort | uniq -d | tr '\n' ' ')
  detail=$(awk -F'\t' '$1 == "success" { u[$2] = u[$2] " " $4 } END { for (w in u) printf "%s:%s; ", substr(w, 1, 12), u[w] }' "$WORK/spread.tsv")
  if [ -z "$shared_uids" ] && [ -n "$detail" ]; then
    pass child-uids-distinct "no uid used by two workers: $detail"
  else fail child-uids-distinct "uids used by more than one worker: ${shared_uids:-none seen}; $detail"; fi

  # docker kill the worker running an execution: it re-runs elsewhere.
  local id w victim t0 t1
  id=$(submit 5 15)
  if w=$(running_on "$id") && victim=$(container_of "$w") && [ -n "$victim" ]; then
    sleep 1
    docker kill "$victim" >/dev/null
    t0=$(date +%s)
    api GET "/api/executions/$id?wait=120"
    t1=$(date +%s)
    if [ "$(jqr .status)" = success ] && [ "$(jqr .attempt)" -ge 2 ] && [ "$(jqr .worker)" != "$w" ]; then
      pass kill-rerun "killed ${victim:0:12} mid-run; re-ran as attempt $(jqr .attempt) on $(jqr .worker), success $((t1 - t0)) s after the kill"
    else fail kill-rerun "after killing ${victim:0:12}: status=$(jqr .status) attempt=$(jqr .attempt) worker=$(jqr .worker) error=$(jqr .error.message)"; fi
  else fail kill-rerun "execution $id never ran (status $(jqr .status))"; fi

  # docker stop (SIGTERM) a worker mid-execution: it drains, the execution finishes there.
  id=$(submit 6 6)
  if w=$(running_on "$id") && victim=$(container_of "$w") && [ -n "$victim" ]; then
    t0=$(date +%s)
    docker stop -t 40 "$victim" >/dev/null
    t1=$(date +%s)
    api GET "/api/executions/$id?wait=60"
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$victim")
    if [ "$(jqr .status)" = success ] && [ "$(jqr .attempt)" = 1 ] && [ "$(jqr .worker)" = "$w" ] && [ "$code" != 137 ]; then
      pass stop-drains "docker stop took $((t1 - t0)) s (exit $code); the 6 s execution finished on the stopping worker, attempt 1"
    else
      local said
      said=$(docker logs "$victim" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'outcome not recorded: [a-z ]*' | sed 's/ execution$//' | head -n1)
      fail stop-drains "SIGTERM to ${victim:0:12} mid-run (stop took $((t1 - t0)) s, exit $code): execution status=$(jqr .status) attempt=$(jqr .attempt) on $(jqr .worker)${said:+; stopping worker logged: $said}"
    fi
  else fail stop-drains "execution $id never ran"; fi

  # A crashed worker process (OOM killer, kill -9) is restarted by the
  # restart policy and becomes healthy again. (`docker kill` is a manual
  # stop, which Docker never undoes under any policy.)
  local crashed pid0 count0
  crashed=$(cids worker | head -n1)
  count0=$(docker inspect -f '{{.RestartCount}}' "$crashed")
  pid0=$(docker top "$crashed" -eo pid,args 2>/dev/null | awk '$2 ~ /runeflow$/ && $3 == "worker" { print $1; exit }')
  if [ -n "$pid0" ] && kill -9 "$pid0"; then
    ok=0
    for i in $(seq 60); do
      [ "$(docker inspect -f '{{.RestartCount}}' "$crashed")" -gt "$count0" ] \
        && [ "$(health "$crashed")" = healthy ] && { ok=1; break; }
      sleep 1
    done
    if [ $ok = 1 ]; then pass crash-restart "kill -9 of the worker process (pid $pid0): container restarted and healthy again in ${i} s"
    else fail crash-restart "after kill -9 of pid $pid0: $(docker inspect -f '{{.State.Status}} restarts={{.RestartCount}}' "$crashed") health=$(health "$crashed")"; fi
  else fail crash-restart "no worker process found in ${crashed:0:12}"; fi

  # Container logs are plain text (no colour codes: not a terminal).
  local esc=0 c2
  for c2 in $(cids api -a) $(cids worker -a) $(cids init -a); do
    docker logs "$c2" 2>&1 | grep -q $'\x1b\[' && esc=$((esc + 1))
  done
  if [ $esc = 0 ]; then pass logs-plain "no ANSI escape codes in init, api and worker logs"
  else fail logs-plain "$esc container log(s) carry ANSI escape codes"; fi

  # down (keeping volumes) and up: files, executions and the module store survive.
  local before
  api GET /api/files/compose_check/mathx.py; before=$BODY
  dc down >"$LOGS/compose-down.log" 2>&1
  local vols
  vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$NAME" | tr '\n' ' ')
  dc up -d >"$LOGS/compose-up2.log" 2>&1
  wait_health api 60
  ok=1; detail="volumes kept: $vols;"
  api GET /api/files/compose_check/mathx.py
  if [ "$CODE" = 200 ] && [ "$BODY" = "$before" ]; then detail="$detail module file intact;"; else ok=0; detail="$detail file -> $CODE;"; fi
  api GET "/api/executions/$FIRST_ID"
  if [ "$CODE" = 200 ] && [ "$(jqr .status)" = success ]; then detail="$detail first execution kept;"; else ok=0; detail="$detail execution -> $CODE;"; fi
  api POST /api/executions '{"workflow":"cc_calc","parameters":{"x":50},"wait":60}'
  if [ "$(jqr .status)" = success ] && [ "$(jqr .result.value)" = 100 ]; then detail="$detail new run success"; else ok=0; detail="$detail new run $(jqr .status) $(jqr .error.message)"; fi
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$(cid1 init)" 2>/dev/null)" = 0 ] || { ok=0; detail="$detail; init did not exit 0"; }
  if [ $ok = 1 ]; then pass down-up-keeps-data "$detail"; else fail down-up-keeps-data "$detail"; fi

  # An idle worker asked to stop while Redis is gone (compose v1 stops redis
  # and the worker in parallel on stop/down) should exit at once, not after
  # RUNEFLOW_DRAIN_SECS.
  local wk restarts
  wk=$(cids worker | head -n1)
  docker stop "$(cid1 redis)" >/dev/null 2>&1
  sleep 1
  t0=$(date +%s.%N)
  docker stop -t 40 "$wk" >/dev/null 2>&1
  t1=$(date +%s.%N)
  restarts=$(docker logs "$wk" 2>&1 | grep -c 'restarting it')
  detail=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if awk -v d="$detail" 'BEGIN { exit !(d < 10) }'; then
    pass worker-stop-no-redis "idle worker stopped in $detail s with Redis down"
  else fail worker-stop-no-redis "idle worker took $detail s to stop with Redis down ($restarts worker-loop restarts logged during shutdown)"; fi
}

# ---- 4. example secrets ------------------------------------------------------

# `cp .env.example .env && compose up`: init refuses the example secrets in
# one line naming the variable, and api and worker never start.
stage_example_secrets() {
  local d=$WORK/example-project name=${NAME}ex c line api
  rm -rf "$d" && mkdir -p "$d"
  tar -C "$PROJ" --exclude=./.env -cf - . | tar -C "$d" -xf -
  { cat "$PROJECT/.env.example"; echo "RUNEFLOW_HTTP_PORT=$((PORT + 1))"; } >"$d/.env"
  "${COMPOSE[@]}" -p "$name" -f "$d/compose.yaml" up -d >"$LOGS/compose-example.log" 2>&1
  c=$(docker ps -aq --filter "label=com.docker.compose.project=$name" --filter label=com.docker.compose.service=init | head -n1)
  for _ in $(seq 60); do [ "$(docker inspect -f '{{.State.Status}}' "$c" 2>/dev/null)" = exited ] && break; sleep 1; done
  line=$(docker logs "$c" 2>&1 | tail -n1)
  api=$(docker ps -aq --filter "label=com.docker.compose.project=$name" --filter label=com.docker.compose.service=api | wc -l)
  if [ "$(docker inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null)" != 0 ] && [[ "$line" == *"still holds the example value"* ]] && [ "$api" = 0 ]; then
    pass example-secrets "init refused .env.example as is: $line; api/worker not started"
  else fail example-secrets "init exit $(docker inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null), last line: $line; api containers: $api"; fi
  "${COMPOSE[@]}" -p "$name" -f "$d/compose.yaml" down -v --remove-orphans >>"$LOGS/compose-example.log" 2>&1
}

# ---- main --------------------------------------------------------------------

note "project $PROJECT ($(git -C "$PROJECT" rev-parse --short HEAD 2>/dev/null)), work dir $WORK, compose: ${COMPOSE[*]}"
copy_project
dc down -v --remove-orphans >"$LOGS/compose.log" 2>&1   # a previous run's leftovers
if curl -s -o /dev/null --max-time 2 "$BASEURL/"; then
  die "something already answers on $BASEURL (set COMPOSE_CHECK_PORT)"
fi
if stage_images && stage_runeflow_image; then
  stage_stack
  stage_example_secrets
else
  fail stack "not started: images missing"
fi
note "logs in $LOGS; took $(($(date +%s) - START)) s"
echo "$PASS/$TOTAL checks pass"
[ "$PASS" = "$TOTAL" ]
