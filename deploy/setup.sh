#!/usr/bin/env bash
# Installs what building and testing Hekate needs on a fresh Debian 12 machine, then exports
# the build environment. Sourced by deploy/dev.sh and deploy/test.sh; safe to run repeatedly.
#
#   libclang-dev    bindgen for the RocksDB bindings
#   g++             RocksDB, compiled from the rocksdb crate's sources (about 15 minutes on 2
#                   cores, once per profile and target directory)
#   librocksdb-dev  Debian's RocksDB 7.8.3: only the rolling-upgrade test's previous release
#                   (deploy/upgrade-base.sh) links it
#   haproxy         the load balancer of the HA tests and deploy/haproxy.cfg
#   openssh-*       a real sshd for the SSH transport's tests
set -euo pipefail

need=()
for pkg in libclang-dev g++ librocksdb-dev haproxy pkg-config openssh-server openssh-client; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "setup: installing ${need[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust 1.89+) is required: https://rustup.rs" >&2; exit 1; }

# Build outside the clone so that re-runs (and CI on the same machine) are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hekate-target}"
