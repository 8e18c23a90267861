#!/usr/bin/env bash
# Start/stop a local Redis for gridcast: scripts/redis.sh up|down|status
#
# Debian's redis-server on 127.0.0.1, daemonised with a pid file. Persistence is the
# append-only file (fsync every second; `down` flushes it): the bridge commits Kafka
# offsets once observations are in Redis, so a Redis restart must not forget them. Idempotent: `up` when it already answers
# does nothing; `down` when it is not running does nothing.
#
# REDIS_PORT (default 6379) and REDIS_DIR (default ~/.cache/gridcast/redis-$PORT)
# let tests run PRIVATE instances they may kill without disturbing anyone else.
set -euo pipefail
PORT="${REDIS_PORT:-6379}"
DIR="${REDIS_DIR:-$HOME/.cache/gridcast/redis-$PORT}"
PIDFILE="$DIR/redis.pid"
LOG="$DIR/redis.log"

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

ensure_installed() {
  command -v redis-server >/dev/null && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "redis.sh: installing redis-server with apt" >&2
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends redis-server
}

up() {
  if ping; then echo "redis: already running on 127.0.0.1:$PORT"; return 0; fi
  ensure_installed
  mkdir -p "$DIR"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --save '' --appendonly yes --appendfsync everysec \
    --dir "$DIR" --pidfile "$PIDFILE" --logfile "$LOG" --protected-mode yes >/dev/null
  for _ in $(seq 1 100); do
    if ping; then echo "redis: up on redis://127.0.0.1:$PORT"; return 0; fi
    sleep 0.1
  done
  echo "redis.sh: redis did not answer on port $PORT; see $LOG" >&2
  return 1
}

down() {
  if ping; then
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown >/dev/null 2>&1 || true
  elif [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")"
  fi
  for _ in $(seq 1 50); do ping || break; sleep 0.1; done
  rm -f "$PIDFILE"
  echo "redis: down (port $PORT)"
}

status() {
  if ping; then echo "redis: running on 127.0.0.1:$PORT"; else echo "redis: not running (port $PORT)"; return 3; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
