#!/usr/bin/env bash
# Build the bridge image (streaming/Containerfile) on the Bento image of `make container`.
#
#   scripts/bridge-image.sh [BENTO_TAG]     (default gridcast:latest; `make bridge-image`)
#
# The base is localhost/<Bento name>:<version>, the image `make container` (or
# `make container-test`) built from that Bento; GRIDCAST_IMAGE=... names another one.
# The build context is a temporary directory holding only streaming/*.py and
# requirements/bridge.txt (not the repository: .venv, data/ and out/ stay out). The
# image is tagged gridcast-bridge:<Bento version> and gridcast-bridge:latest (podman
# names them localhost/gridcast-bridge:...); docker-compose.yml runs the bridges from
# ${GRIDCAST_BRIDGE_IMAGE:-gridcast-bridge:latest}.
set -euo pipefail
cd "$(dirname "$0")/.."

BENTO=${1:-gridcast:latest}
PY=.venv/bin/python
BENTOML=.venv/bin/bentoml

log() { printf 'bridge-image: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

version=$("$BENTOML" get "$BENTO" -o json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])') \
    || fail "no Bento $BENTO in the store; run 'make container' first"
base=${GRIDCAST_IMAGE:-localhost/gridcast:$version}
podman image exists "$base" || fail "no image $base; run 'make container' first (or set GRIDCAST_IMAGE)"

ctx=$(mktemp -d /tmp/gridcast-bridge-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/requirements"
cp requirements/bridge.txt "$ctx/requirements/"
find streaming -name '*.py' -not -path '*/__pycache__/*' -print0 | tar --null -T - -cf - | tar -xf - -C "$ctx"

t0=$(date +%s)
log "building on $base"
podman build --network host -f streaming/Containerfile --build-arg "GRIDCAST_IMAGE=$base" \
    -t "localhost/gridcast-bridge:$version" -t localhost/gridcast-bridge:latest "$ctx" >&2
size=$(podman image inspect localhost/gridcast-bridge:latest --format '{{.Size}}')
log "built in $(( $(date +%s) - t0 )) s, $(( size / 1000000 )) MB"
echo "Image: localhost/gridcast-bridge:$version (and :latest)"
