# Sourced by the other scripts: make sure PostgreSQL, Redis and python3 are
# installed and running on this machine (installing them with apt-get when
# absent), and export the URLs the scripts use.
#
# Existing services are used as they are. Only a PostgreSQL this script
# installed itself gets trust authentication on loopback.

set -euo pipefail

: "${PGHOST_ADDR:=127.0.0.1}"
: "${PGPORT:=5432}"
: "${REDIS_PORT:=6379}"

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  log "installing $*"
  if [ -z "${_RF_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _RF_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
  if pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT" 2>/dev/null; then
    return
  fi
  local fresh=""
  if [ -z "$(pg_bin)" ]; then
    apt_install postgresql postgresql-client
    fresh=1
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    pg_createcluster "$(basename "$(dirname "$(pg_bin)")")" main >&2
    fresh=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "$fresh" ]; then
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    log "trusting loopback connections in $hba (fresh install)"
    sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)\s(peer|md5|scram-sha-256)$/\1\2 trust/' "$hba"
    sed -i -E 's/^(local\s+all\s+postgres\s+)peer$/\1trust/' "$hba"
    grep -q "^listen_addresses" "/etc/postgresql/$version/main/postgresql.conf" ||
      echo "listen_addresses = '127.0.0.1'" >> "/etc/postgresql/$version/main/postgresql.conf"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do
    pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT" && return
    sleep 0.5
  done
  log "PostgreSQL did not become ready on $PGHOST_ADDR:$PGPORT"
  return 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/runeflow.log >&2
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
    sleep 0.2
  done
  log "Redis did not start"
  return 1
}

ensure_python() {
  command -v python3 >/dev/null || apt_install python3
}

# moto's S3 server, which tests/import.rs starts on loopback.
ensure_moto() {
  if python3 -c "import moto.server" >/dev/null 2>&1; then
    return
  fi
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  log "installing moto[server] with pip"
  # Debian marks its python3 as externally managed (PEP 668); fall back to
  # --break-system-packages there.
  python3 -m pip install -q 'moto[server]' >&2 ||
    python3 -m pip install -q --break-system-packages 'moto[server]' >&2
}

# PyYAML, with which tests/compose.rs reads compose.yaml.
ensure_pyyaml() {
  python3 -c "import yaml" >/dev/null 2>&1 && return
  log "installing PyYAML"
  python3 -m pip install -q pyyaml >&2 ||
    python3 -m pip install -q --break-system-packages pyyaml >&2 ||
    apt_install python3-yaml
}

ensure_services() {
  command -v pg_isready >/dev/null || apt_install postgresql-client
  command -v redis-cli >/dev/null || apt_install redis-tools
  ensure_postgres
  ensure_redis
  ensure_python
}

# psql as the postgres superuser on loopback.
rf_psql() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST_ADDR" -p "$PGPORT" -U postgres "$@"
}

# Creates database $1 unless it exists.
ensure_database() {
  if [ "$(rf_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" != "1" ]; then
    rf_psql -d postgres -c "CREATE DATABASE \"$1\"" >&2
  fi
}
