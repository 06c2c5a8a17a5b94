#!/usr/bin/env bash
# Two gateway instances behind no balancer, for trying multi-instance behaviour by hand
# (shared locks and pub/sub over Redis, one database, sessions valid on both): starts
#
#   switchboard simulate-pbx   once, on 127.0.0.1:$AMI_PORT (both gateways log in to it)
#   switchboard serve --port 8081
#   switchboard serve --port 8082
#
# against ONE PostgreSQL (SWITCHBOARD_DATABASE_URL) and ONE Redis (SWITCHBOARD_REDIS_URL),
# after applying migrations once. Ctrl-C stops all three; if any of them exits, the others
# are stopped too. Logs go to $LOG_DIR/{pbx,gateway-8081,gateway-8082}.log.
#
# Local testing only, not run in CI. Needs PostgreSQL and Redis reachable: run
# `eval "$(scripts/ensure-services.sh)"` first if they are not. Overridable environment:
#   SWITCHBOARD_DATABASE_URL  default postgresql+asyncpg://postgres@127.0.0.1:5432/switchboard_multi
#                             (created when missing)
#   SWITCHBOARD_REDIS_URL     default redis://127.0.0.1:6379/0
#   SWITCHBOARD_API_TOKENS    default one admin token, printed below (both instances must
#                             share the token list: it also keys the console's sessions)
#   GATEWAY_PORTS             default "8081 8082"
#   AMI_PORT                  default 5038
#   LOAD_DEMO=1               load the demo customers/agents first
#   LOG_DIR                   default a fresh temporary directory
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export SWITCHBOARD_DATABASE_URL="${SWITCHBOARD_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/switchboard_multi}"
export SWITCHBOARD_REDIS_URL="${SWITCHBOARD_REDIS_URL:-redis://127.0.0.1:6379/0}"
DEV_TOKEN=multi-instance-admin-token
if [ -z "${SWITCHBOARD_API_TOKENS:-}" ]; then
  export SWITCHBOARD_API_TOKENS="$DEV_TOKEN:admin" SHOW_TOKEN=1
fi
# The simulator accepts the gateway's configured login; without one it expects this demo
# secret, so both sides agree on it here.
export SWITCHBOARD_AMI_SECRET="${SWITCHBOARD_AMI_SECRET:-changeme}"
GATEWAY_PORTS=${GATEWAY_PORTS:-"8081 8082"}
AMI_PORT=${AMI_PORT:-5038}
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/switchboard-multi.XXXXXX)}
mkdir -p "$LOG_DIR"

log() { printf 'multi-instance: %s\n' "$*" >&2; }
host_port() { # host:port of a URL, defaulting the port
  local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}
  case $rest in *:*) echo "$rest" ;; *) echo "$rest:$2" ;; esac
}
listening() { (exec 3<>"/dev/tcp/${1%%:*}/${1##*:}") 2>/dev/null; }

for service in "PostgreSQL $(host_port "$SWITCHBOARD_DATABASE_URL" 5432)" \
               "Redis $(host_port "$SWITCHBOARD_REDIS_URL" 6379)"; do
  if ! listening "${service#* }"; then
    log "${service% *} is not reachable at ${service#* }; try: eval \"\$(scripts/ensure-services.sh)\""
    exit 1
  fi
done

# Create the database when it does not exist yet (connecting to the server's `postgres` db).
"$BIN/python" - <<'PY'
import asyncio, os
import asyncpg

url = os.environ["SWITCHBOARD_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
base, name = url.rsplit("/", 1)

async def main() -> None:
    connection = await asyncpg.connect(base + "/postgres")
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
            print(f"multi-instance: created database {name}")
    finally:
        await connection.close()

asyncio.run(main())
PY

"$BIN/switchboard" db upgrade
if [ "${LOAD_DEMO:-0}" = 1 ]; then "$BIN/switchboard" demo; fi

pids=()
stop_all() {
  trap - INT TERM EXIT
  log "stopping ${pids[*]}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop_all INT TERM EXIT

"$BIN/switchboard" simulate-pbx --port "$AMI_PORT" --script config/demo/pbx-script.yaml \
  >"$LOG_DIR/pbx.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do listening "127.0.0.1:$AMI_PORT" && break; sleep 0.2; done

for port in $GATEWAY_PORTS; do
  SWITCHBOARD_AMI_HOST=127.0.0.1 SWITCHBOARD_AMI_PORT="$AMI_PORT" \
    SWITCHBOARD_PUBLIC_URL="http://127.0.0.1:$port" \
    "$BIN/switchboard" serve --port "$port" >"$LOG_DIR/gateway-$port.log" 2>&1 &
  pids+=($!)
done

for port in $GATEWAY_PORTS; do
  for _ in $(seq 1 100); do listening "127.0.0.1:$port" && break; sleep 0.2; done
  log "gateway on http://127.0.0.1:$port ($(curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null || echo 'not answering yet'))"
done
log "PBX simulator on 127.0.0.1:$AMI_PORT; logs in $LOG_DIR"
# Only our own throwaway token is shown; a caller's real tokens stay off the terminal.
if [ "${SHOW_TOKEN:-0}" = 1 ]; then log "API token (admin): $DEV_TOKEN"; fi
log "Ctrl-C stops everything"

# Whichever process exits first (crash or Ctrl-C), stop the rest.
wait -n "${pids[@]}" || true
