#!/usr/bin/env bash
# README command 2 (and CI, via .ci/run): set up, then the whole gate: formatting, clippy
# with warnings as errors, and every test tier (unit, storage conformance, process-level
# clusters). One build profile (debug) for everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"; cargo test --workspace 2>&1 | tee /tmp/hekate-test.log
