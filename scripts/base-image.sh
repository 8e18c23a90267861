#!/usr/bin/env bash
# Build a local Debian bookworm base image for `bentoml containerize`, because no
# image registry (docker.io, ghcr.io, ...) is reachable from this machine: only the
# Debian mirror and PyPI are. The image carries what BentoML's generated Dockerfile
# expects of a base: python3 (3.11 on bookworm), pip, venv, CA certificates, and uv
# (BentoML installs the Bento's packages with uv). The packages BentoML's Dockerfile
# apt-installs on a Debian base (gnupg2, build-essential, git) are preinstalled, so
# that step of every containerize is a quick no-op instead of a 100 MB download.
#
# The host's CA bundle is copied in, because outbound TLS here may be intercepted by a
# proxy whose CA only the host trusts; SSL_CERT_FILE / UV_NATIVE_TLS make pip and uv
# use it during the image build.
#
# Usage: scripts/base-image.sh [IMAGE]   (default localhost/gridcast-base:bookworm)
# Idempotent: does nothing when the image exists (set FORCE=1 to rebuild).
set -euo pipefail

IMAGE=${1:-localhost/gridcast-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if [ -z "${FORCE:-}" ] && podman image exists "$IMAGE"; then
    echo "base-image: $IMAGE already exists"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }

root=$(mktemp -d /tmp/gridcast-rootfs.XXXXXX)
cleanup() {
    # Unmount anything the chroot steps left mounted before deleting the tree.
    for m in proc sys dev; do umount -l "$root/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT

start=$(date +%s)
echo "base-image: debootstrap $SUITE into $root"
debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates,gnupg2,build-essential,git \
    "$SUITE" "$root" "$MIRROR" >/dev/null

cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_ROOT_USER_ACTION=ignore \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    python3 -m pip install -q --no-cache-dir --break-system-packages uv
umount "$root/proc"

# Keep the image small: apt lists, caches and docs are not needed at run time.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/root/.cache
: > "$root/etc/resolv.conf"

tar -C "$root" -c . | podman import \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV UV_NATIVE_TLS=1" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
echo "base-image: built $IMAGE in $(( $(date +%s) - start )) s"
