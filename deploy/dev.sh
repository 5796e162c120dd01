#!/usr/bin/env bash
# README command 1: set up, build, and start a local three-replica Hekate cluster with the
# mock executor, ready for hekate-cli / heketi-cli. Extra arguments go to `hekate dev`
# (e.g. --base-port 9080 --data-dir /tmp/hk). Ctrl-C stops it; running it again resumes it.
# The build shares deploy/test.sh's dependency artifacts (one feature set: Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
cargo build --bins
bin=$(cd "$CARGO_TARGET_DIR/debug" && pwd)
echo "hekate:     $bin/hekate"
echo "hekate-cli: $bin/hekate-cli"
echo "(to call them by name: export PATH=\"$bin:\$PATH\")"
exec "$bin/hekate" dev "$@"
