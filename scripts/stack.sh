#!/usr/bin/env bash
# The whole real-time pipeline on one machine (make stack):
#   Redis + Kafka -> gridcast serve (service + UI) -> gridcast stream (bridge) <- gridcast replay (producer)
# Ctrl-C stops the service and the bridge this script started (Redis and Kafka stay up:
# `make services-down` stops them).
#
# STACK_DATA: a canonical Parquet table to replay (default: a synthetic one, generated)
# STACK_SPEED: replay speed, simulated seconds per real second (default 3600 = an hour per second)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
OUT="${OUT:-out}/stack"
mkdir -p "$OUT"
export GRIDCAST_REDIS_URL="${GRIDCAST_REDIS_URL:-redis://127.0.0.1:6379/0}"
PORT="${GRIDCAST_PORT:-3000}"
SPEED="${STACK_SPEED:-3600}"
PREFIX="${GRIDCAST_REDIS_KEY_PREFIX:-gridcast}"

bash scripts/redis.sh up
bash scripts/kafka.sh up

echo "stack: making sure served models exist (quick demo models are trained once if the store is empty)"
$BIN/python -c "from gridcast.settings import get_settings; from training.train_cli import ensure_quick_models; ensure_quick_models(get_settings())"

DATA="${STACK_DATA:-$OUT/replay.parquet}"
if [ ! -f "$DATA" ]; then
  # continue where the served models' context ends, so the replayed observations are
  # newer than what the models already know and every forecast starts from them
  START=$($BIN/python -c "
import pandas as pd
from gridcast.store import served_models
ends = [pd.Timestamp(e) for m in served_models() if (e := m.metadata.get('context_end') or m.metadata.get('train_end'))]
print((max(ends) + pd.Timedelta('1D')).strftime('%Y-%m-%d') if ends else '2023-01-01')")
  $BIN/gridcast data sample --out "$DATA" --days 14 --regions 2 --start "$START"
fi

pids=()
cleanup() {
  [ ${#pids[@]} -eq 0 ] && return
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  echo "stack: service and bridge stopped (Redis and Kafka still up; make services-down stops them)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

$BIN/gridcast serve --port "$PORT" >"$OUT/service.log" 2>&1 &
pids+=($!)
echo -n "stack: waiting for the service on :$PORT "
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "${pids[0]}" 2>/dev/null || { echo; echo "stack: the service exited; see $OUT/service.log" >&2; exit 1; }
  echo -n .; sleep 1
done
echo

$BIN/gridcast stream >"$OUT/bridge.log" 2>&1 &
pids+=($!)
echo -n "stack: waiting for the bridge to join its consumer group "
for _ in $(seq 1 180); do
  grep -q "partitions assigned" "$OUT/bridge.log" 2>/dev/null && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo; echo "stack: the bridge exited; see $OUT/bridge.log" >&2; exit 1; }
  echo -n .; sleep 1
done
echo

REGION=$($BIN/python -c "from gridcast.schema import read_table; df,_=read_table('$DATA'); print(sorted(df['region'].unique())[0])")
cat <<MSG

  gridcast stack is up
  --------------------
  service      http://127.0.0.1:$PORT          (API docs at /docs, metrics at /metrics)
  UI           http://127.0.0.1:$PORT/ui
  Redis        redis://127.0.0.1:6379   Kafka 127.0.0.1:9092
  logs         $OUT/service.log  $OUT/bridge.log

  watch forecasts arrive:
    redis-cli GET $PREFIX:cache:latest:$REGION | head -c 400; echo
    .venv/bin/python -m streaming.watch            # prints each forecast published on the topic
    curl -s -X POST http://127.0.0.1:$PORT/recent -H 'content-type: application/json' -d '{"region": "$REGION", "n": 24}'

  replaying $DATA at speed $SPEED (Ctrl-C stops everything)
MSG
$BIN/gridcast replay --data "$DATA" --speed "$SPEED" --weather  # + daily weather vintages
echo "stack: replay finished; the service and bridge keep running (Ctrl-C to stop)"
wait
