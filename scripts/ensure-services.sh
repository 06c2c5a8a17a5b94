#!/usr/bin/env bash
# Make sure a PostgreSQL and a Redis are reachable for the test suite, and print the
# environment that points the tests at them (eval the output).
#
# Order of preference, for each service: a server already listening on its standard
# loopback port; the machine's own cluster/server started with its usual command; a
# throwaway server of our own on another loopback port (installing Debian's package
# first when the binaries are missing). Progress goes to stderr, exports to stdout.
set -euo pipefail

PG_PORT=5432
REDIS_PORT=6379
STATE_DIR="${SWITCHBOARD_SERVICES_DIR:-/tmp/switchboard-services}"

log() { printf 'ensure-services: %s\n' "$*" >&2; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  local port=$1 i
  for i in $(seq 1 60); do listening "$port" && return 0; sleep 0.5; done
  return 1
}
apt_install() {
  log "installing Debian packages: $*"
  if [ "$(id -u)" -ne 0 ]; then log "not root: cannot apt-get install $*"; return 1; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >&2
}

ensure_postgres() {
  if listening "$PG_PORT"; then
    log "PostgreSQL already listening on 127.0.0.1:$PG_PORT"
    echo "postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/test"; return
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    log "starting the machine's PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >&2 || true
    if wait_for "$PG_PORT"; then
      psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
        || createdb -h 127.0.0.1 -U postgres test >&2 || true
      echo "postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/test"; return
    fi
  fi
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$initdb" ]; then apt_install postgresql >&2; initdb=$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1); fi
  local bindir port=55432 data="$STATE_DIR/pg"
  bindir=$(dirname "$initdb")
  if ! listening "$port"; then
    log "starting a throwaway PostgreSQL on 127.0.0.1:$port ($data)"
    mkdir -p "$STATE_DIR"; rm -rf "$data"
    local runas=()
    if [ "$(id -u)" -eq 0 ]; then id postgres >/dev/null 2>&1 || useradd -r postgres; chown postgres "$STATE_DIR"; runas=(runuser -u postgres --); fi
    "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    "${runas[@]}" "$bindir/pg_ctl" -D "$data" -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" -l "$data.log" start >&2
    wait_for "$port"
    "${runas[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres test >&2 || true
  fi
  echo "postgresql+asyncpg://postgres@127.0.0.1:$port/test"
}

ensure_redis() {
  if listening "$REDIS_PORT"; then
    log "Redis already listening on 127.0.0.1:$REDIS_PORT"; echo "redis://127.0.0.1:$REDIS_PORT/0"; return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis on 127.0.0.1:$REDIS_PORT (nothing kept on disk)"
  mkdir -p "$STATE_DIR"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$STATE_DIR" --logfile "$STATE_DIR/redis.log" >&2
  wait_for "$REDIS_PORT"
  echo "redis://127.0.0.1:$REDIS_PORT/0"
}

pg_url=$(ensure_postgres)
redis_url=$(ensure_redis)
echo "export SWITCHBOARD_TEST_DATABASE_URL='$pg_url'"
echo "export SWITCHBOARD_TEST_REDIS_URL='$redis_url'"
