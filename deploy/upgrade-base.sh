#!/usr/bin/env bash
# Builds the previous release's `hekate` for the rolling-upgrade test (bench/tests/upgrade.rs)
# and prints its path. The previous release is commit $HEKATE_UPGRADE_BASE (default: the one
# tagged v0.19.0, the last build that writes log format 0). Built once per commit, in the
# shared target directory: only the two hekate crates compile (about 2 minutes), the
# dependencies are shared.
#
# Why the package version is rewritten: cargo names a path package's artifacts by a hash of
# its name, version and path *relative to the workspace*, the same for the old tree and this
# one, so the old build would overwrite this tree's artifacts while cargo still believes them
# fresh. A distinct version keeps them apart.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh >/dev/null
base=${HEKATE_UPGRADE_BASE:-92e7c4da4d10bbcb25b7f927575c6e2772dfbecc}
commit=$(git rev-parse --verify --quiet "$base^{commit}") || {
    echo "upgrade base $base is not in this clone's history (a shallow clone? git fetch --unshallow)" >&2
    exit 1
}
out=/var/tmp/hekate-upgrade-base/$commit
if [[ ! -x $out/hekate ]]; then
    src=$(mktemp -d /var/tmp/hekate-upgrade-src.XXXXXX)
    trap 'rm -rf "$src"' EXIT
    git archive "$commit" | tar -x -C "$src"
    sed -i '0,/^version = /s/^version = .*/version = "0.0.0-upgrade-base"/' "$src/Cargo.toml"
    echo "== building the upgrade base ${commit:0:12} (previous release)" >&2
    (cd "$src" && cargo build --quiet --bin hekate)
    mkdir -p "$out"
    cp "$CARGO_TARGET_DIR/debug/hekate" "$out/hekate.partial"
    mv "$out/hekate.partial" "$out/hekate"
    # Cargo copied the old binary to $CARGO_TARGET_DIR/debug/hekate: put this tree's back.
    cargo build --quiet --bin hekate
fi
echo "$out/hekate"
