#!/usr/bin/env bash
# The container acceptance test: containerize the Bento, start it, ask it for a forecast.
#
#   scripts/container-test.sh [BENTO_TAG]      (default gridcast:latest; `make container-test`
#                                               builds the Bento first)
#
# 1. podman configured for this host (scripts/podman-setup.sh);
# 2. the local Debian base image built if missing (scripts/base-image.sh): no image
#    registry is reachable here, so `podman build --from` substitutes it for the standard
#    python:3.11-slim base of the shipped bentofile; the Bento itself is unchanged;
# 3. `bentoml containerize` (podman backend, host network so uv reaches PyPI);
# 4. `podman run --network host IMAGE serve --port N` on a free port, wait for /readyz;
# 5. GET /models for a region serving an LSTM, POST /forecast {region, model: lstm,
#    horizon: 24}; check 24 points on one grid with lower <= mean <= upper at every level;
# 6. the bridge image on it (scripts/bridge-image.sh: streaming/Containerfile, about 10 s):
#    `--help` lists stream and replay; `stream` against an unreachable Kafka runs its
#    retry loop and stops cleanly (exit 0) on SIGTERM, as compose's bridges are stopped;
# 7. the containers are removed on exit, whatever happened (trap).
#
# Images are kept, so a second run reuses the base image and podman's layer cache;
# older gridcast (and gridcast-bridge) images than the ones just built are removed to
# bound disk use.
set -euo pipefail
cd "$(dirname "$0")/.."

BENTO=${1:-gridcast:latest}
BASE_IMAGE=${GRIDCAST_BASE_IMAGE:-localhost/gridcast-base:bookworm}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-360}
HORIZON=24
PY=.venv/bin/python
BENTOML=.venv/bin/bentoml

log() { printf 'container-test: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

t0=$(date +%s)
bash scripts/podman-setup.sh
bash scripts/base-image.sh "$BASE_IMAGE"

# The concrete Bento version names the image (localhost/gridcast:<version>).
tag=$("$BENTOML" get "$BENTO" -o json 2>/dev/null | "$PY" -c 'import json,sys; d = json.load(sys.stdin); print(d["name"] + ":" + d["version"])') \
    || fail "no Bento $BENTO in the store; run 'make bento' first"
image="localhost/${tag}"

# Fail fast (before minutes of image building) if the Bento lacks a served model: the
# container could not load it. BentoML packs only models referenced at class scope.
"$PY" - "$tag" <<'EOF' || fail "the Bento does not carry the served models; see above"
import sys

import bentoml

from gridcast.store import served_tags

packed = {str(m.tag) for m in bentoml.bentos.get(sys.argv[1]).info.all_models}
missing = sorted(set(served_tags()) - packed)
if missing:
    sys.exit(f"container-test: {sys.argv[1]} lacks served models {missing}; the service must reference "
             "each one at class scope (a bentoml.models.BentoModel class attribute)")
EOF
log "containerizing $tag on $BASE_IMAGE"
t_build=$(date +%s)
"$BENTOML" containerize "$tag" --backend podman --image-tag "$tag" \
    --opt network=host --opt "from=$BASE_IMAGE" >/tmp/gridcast-containerize.log 2>&1 \
    || { tail -n 40 /tmp/gridcast-containerize.log >&2; fail "bentoml containerize failed (log: /tmp/gridcast-containerize.log)"; }
build_s=$(( $(date +%s) - t_build ))
size=$(podman image inspect "$image" --format '{{.Size}}')
log "built $image in ${build_s} s, $(( size / 1000000 )) MB"

# Keep the cache, drop superseded gridcast images (their bridge images first: children).
bridge="localhost/gridcast-bridge:${tag#*:}"
podman images --filter "reference=localhost/gridcast-bridge" --format '{{.Repository}}:{{.Tag}}' \
    | grep -v -x -F -e "$bridge" -e localhost/gridcast-bridge:latest | xargs -r podman rmi >/dev/null 2>&1 || true
podman images --filter "reference=localhost/gridcast" --format '{{.Repository}}:{{.Tag}}' \
    | grep -v -x -F "$image" | xargs -r podman rmi >/dev/null 2>&1 || true

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name="gridcast-test-$$"
bridge_name="gridcast-bridge-test-$$"
cleanup() {
    for c in "$name" "$bridge_name"; do
        if podman container exists "$c" 2>/dev/null; then
            podman rm -f -t 5 "$c" >/dev/null 2>&1 || true
            log "removed container $c"
        fi
    done
}
trap cleanup EXIT INT TERM

t_start=$(date +%s)
podman run -d --name "$name" --network host "$image" serve --port "$port" >/dev/null
log "started $name on port $port; waiting for /readyz (up to ${READY_TIMEOUT_S} s)"
url="http://127.0.0.1:${port}"
until curl -sf --max-time 5 -o /dev/null "$url/readyz"; do
    if [ "$(podman inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
        podman logs --tail 60 "$name" >&2 || true
        fail "the container exited before it was ready"
    fi
    if (( $(date +%s) - t_start > READY_TIMEOUT_S )); then
        podman logs --tail 60 "$name" >&2 || true
        fail "/readyz not OK after ${READY_TIMEOUT_S} s"
    fi
    sleep 1
done
ready_s=$(( $(date +%s) - t_start ))
log "ready after ${ready_s} s"

region=$(curl -sf "$url/models" | "$PY" -c '
import json, sys
models = json.load(sys.stdin)["models"]
print(next(m["region"] for m in models if m["alias"] == "lstm"))
') || fail "GET /models lists no LSTM model"
body=$(printf '{"region": "%s", "model": "lstm", "horizon": %d}' "$region" "$HORIZON")
answer=$(curl -s -w '\n%{http_code}' -X POST "$url/forecast" -H 'content-type: application/json' -d "$body")
status=${answer##*$'\n'}
[ "$status" = 200 ] || { podman logs --tail 40 "$name" >&2 || true; fail "POST /forecast answered $status: ${answer%$'\n'*}"; }

printf '%s' "${answer%$'\n'*}" | "$PY" -c '
import json, sys
from datetime import datetime, timedelta

horizon, region = int(sys.argv[1]), sys.argv[2]
r = json.load(sys.stdin)
points = r["points"]
assert r["region"] == region and r["model"] == "lstm", (r["region"], r["model"])
assert len(points) == horizon, f"{len(points)} points, wanted {horizon}"
stamps = [datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in points]
steps = {b - a for a, b in zip(stamps, stamps[1:])}
assert len(steps) == 1 and steps.pop() > timedelta(0), "timestamps not increasing on one grid"
for p in points:
    assert p["lower"] <= p["mean"] <= p["upper"], p
    for level, iv in p["intervals"].items():
        assert iv["lower"] <= p["mean"] <= iv["upper"], (level, p)
assert not r["fallback"], "the LSTM did not answer (naive fallback)"
version, first = r["model_version"], points[0]
start, mean, lo, hi = first["timestamp"], first["mean"], first["lower"], first["upper"]
print(f"container-test: OK: {region} lstm {version}: {len(points)} points from {start}, "
      f"first mean {mean:.1f} in [{lo:.1f}, {hi:.1f}]")
' "$HORIZON" "$region" || fail "the forecast answer is wrong"

# The bridge image on the image just tested (what docker-compose.yml's bridges run).
t_bridge=$(date +%s)
GRIDCAST_IMAGE="$image" bash scripts/bridge-image.sh "$tag" >/tmp/gridcast-bridge-image.log 2>&1 \
    || { tail -n 40 /tmp/gridcast-bridge-image.log >&2; fail "the bridge image did not build (log: /tmp/gridcast-bridge-image.log)"; }
help=$(podman run --rm --network host "$bridge" --help) || fail "$bridge --help failed"
grep -q ' stream ' <<<"$help" && grep -q ' replay ' <<<"$help" || fail "$bridge --help lists no stream/replay: $help"
podman run -d --name "$bridge_name" --network host -e GRIDCAST_KAFKA_BOOTSTRAP=127.0.0.1:1 \
    -e GRIDCAST_REDIS_URL=redis://127.0.0.1:1/0 -e GRIDCAST_STREAM_METRICS_PORT=0 "$bridge" >/dev/null
sleep 4
[ "$(podman inspect -f '{{.State.Running}}' "$bridge_name")" = true ] \
    || { podman logs --tail 30 "$bridge_name" >&2 || true; fail "the bridge exited at once"; }
podman stop -t 30 "$bridge_name" >/dev/null
bridge_rc=$(podman inspect -f '{{.State.ExitCode}}' "$bridge_name")
podman logs "$bridge_name" 2>&1 | grep -q 'bridge: stopped' && [ "$bridge_rc" = 0 ] \
    || { podman logs --tail 30 "$bridge_name" >&2 || true; fail "the bridge did not stop cleanly on SIGTERM (exit $bridge_rc)"; }
bridge_s=$(( $(date +%s) - t_bridge ))
log "OK: $bridge builds, lists stream/replay, runs stream and stops cleanly on SIGTERM (${bridge_s} s)"

log "timings: containerize ${build_s} s, start to /readyz ${ready_s} s, bridge image ${bridge_s} s, total $(( $(date +%s) - t0 )) s; image $(( size / 1000000 )) MB"
