#!/usr/bin/env bash
# README command 1: set up, build, and start a local three-replica Hekate cluster with the
# mock executor, ready for hekate-cli / heketi-cli. Extra arguments go to `hekate dev`
# (e.g. --base-port 9080 --data-dir /tmp/hk). Ctrl-C stops it; running it again resumes it.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
cargo build --bins
exec "$CARGO_TARGET_DIR/debug/hekate" dev "$@"
