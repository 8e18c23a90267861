#!/usr/bin/env bash
# Make podman usable on this kind of host (root inside a VM/container, no systemd,
# no image registry): install podman/runc/debootstrap when missing and write a
# containers.conf that avoids the things that fail here.
#   default_ulimits = []   the stock nofile ulimit cannot be raised inside this sandbox
#   cgroup_manager  = "cgroupfs"   there is no systemd to talk to
#   runtime         = "runc"       crun is not installed / not usable here
# Idempotent: a second run changes nothing.
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    echo "podman-setup: installing ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

conf=/etc/containers/containers.conf
want='# Written by gridcast scripts/podman-setup.sh (see the comments there).
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"'

if [ -f "$conf" ] && [ "$(cat "$conf")" = "$want" ]; then
    exit 0
fi
if [ -f "$conf" ] && ! grep -q 'gridcast scripts/podman-setup.sh' "$conf"; then
    $SUDO cp "$conf" "$conf.gridcast-backup"
    echo "podman-setup: kept the previous $conf as $conf.gridcast-backup"
fi
$SUDO mkdir -p /etc/containers
printf '%s\n' "$want" | $SUDO tee "$conf" >/dev/null
echo "podman-setup: wrote $conf"
