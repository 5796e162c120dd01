#!/usr/bin/env bash
# README command 2 (and CI, via .ci/run): set up, then the whole gate: formatting, clippy
# with warnings as errors, and every test tier (unit, storage conformance, process-level
# clusters, end to end against real gluster nodes). One build profile (debug) for everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
# The testbed of real gluster nodes (network namespaces on this machine; needs root).
# Leftovers of an interrupted run are removed first; the testbed goes down on exit.
if [[ $(id -u) == 0 ]]; then
    echo "== testbed"
    bash tests/testbed/testbed.sh down
    trap 'bash tests/testbed/testbed.sh down' EXIT
    bash tests/testbed/testbed.sh up 3 2     # installs its packages on first use
    bash tests/testbed/shim-selftest.sh >/tmp/hekate-shim-selftest.log 2>&1 ||
        { cat /tmp/hekate-shim-selftest.log; exit 1; }
    bash tests/testbed/gluster-block-selftest.sh >/tmp/hekate-gluster-block-selftest.log 2>&1 ||
        { cat /tmp/hekate-gluster-block-selftest.log; exit 1; }
    export HEKATE_REQUIRE_TESTBED=1
else
    echo "== testbed: skipped (not root); tests/e2e.rs will not check anything" >&2
fi
# The previous release, for the rolling-upgrade test (bench/tests/upgrade.rs).
echo "== upgrade base"
HEKATE_UPGRADE_FROM=$(bash deploy/upgrade-base.sh)
export HEKATE_UPGRADE_FROM HEKATE_REQUIRE_UPGRADE=1
echo "== tests"; cargo test --workspace 2>&1 | tee /tmp/hekate-test.log
