#!/bin/bash
# Self-test for tests/testbed/gluster-block, the testbed's gluster-block shim (run as root,
# with the testbed up: `tests/testbed/testbed.sh up`). Why: the shim stands in for
# gluster-block in the SSH executor's tests, so its answers must keep gluster-block's shapes
# (stdout + exit 0 on success, `{ "RESULT": "FAIL", "errCode": N, "errMsg": ... }` on stderr
# with exit N) and its state must really be in the volume. On the testbed's first node it
# makes a one-brick scratch volume `shimtest_selftest` (features.shard on, as Heketi's
# `group gluster-block` sets it), drives every command form Heketi sends and the failures,
# checks the files through a FUSE mount, and removes the volume.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TB=$HERE/testbed.sh
[ "$(id -u)" = 0 ] || { echo "must run as root"; exit 2; }
HT_STATE=${HT_STATE:-/tmp/hekate-testbed}
[ -e "$HT_STATE/env" ] || { echo "no testbed at $HT_STATE (tests/testbed/testbed.sh up)"; exit 2; }
. "$HT_STATE/env"
NODE=${HT_NODES%% *} IP=${HT_IPS%% *}
V=shimtest_selftest
# the shim under test, even if the running testbed was brought up with an older one
install -m 755 "$HERE/gluster-block" /opt/hekate-testbed/sbin/gluster-block

FAILS=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; FAILS=$((FAILS + 1)); }
on() { bash "$TB" exec "$NODE" bash -c "$1"; }
# gb ARGS...: run the shim on the node; $OUT stdout, $ERR stderr, $RC exit status
gb() {
    local t; t=$(mktemp)
    OUT=$(bash "$TB" exec "$NODE" gluster-block "$@" 2>"$t"); RC=$?; ERR=$(cat "$t"); rm -f "$t"
}
expect() { # name rc stdout-regex stderr-regex
    if [ "$RC" = "$2" ] && [[ $OUT =~ $3 ]] && [[ $ERR =~ $4 ]]; then pass "$1"
    else fail "$1 (rc=$RC out=$OUT err=$ERR)"; fi
}
cleanup() {
    on "gluster --mode=script volume stop $V force; gluster --mode=script volume delete $V; rm -rf /var/lib/heketi/$V" >/dev/null 2>&1
}
trap cleanup EXIT
cleanup

gb list $V --json
expect "list of a missing volume" 2 '^$' '^\{ "RESULT": "FAIL", "errCode": 2, "errMsg": "Volume shimtest_selftest does not exist" \}$'
on "mkdir -p /var/lib/heketi/$V/b && gluster --mode=script volume create $V $IP:/var/lib/heketi/$V/b force && gluster --mode=script volume set $V features.shard on" >/dev/null
gb list $V --json
expect "list of a stopped volume" 5 '^$' '"errMsg": "Check if volume shimtest_selftest is operational"'
on "gluster --mode=script volume start $V" >/dev/null
gb list $V --json
expect "list, empty" 0 '^\{ "blocks": \[ \], "RESULT": "SUCCESS" \}$' '^$'

gb create $V/b1 ha 1 auth enable prealloc full "$IP" 1GiB --json
expect "create, auth, prealloc full" 0 \
    '^\{ "IQN": "iqn.2016-12.org.gluster-block:([0-9a-f-]{36})", "USERNAME": "[0-9a-f-]{36}", "PASSWORD": "[0-9a-f-]{36}", "PORTAL\(S\)": \[ "'"$IP"':3260" \], "RESULT": "SUCCESS" \}$' '^$'
G1=$(sed -E 's/.*gluster-block:([0-9a-f-]{36}).*/\1/' <<<"$OUT")
gb create $V/b1 ha 1 auth disable prealloc no "$IP" 1GiB --json
expect "create, name taken" 17 '^$' "\"errMsg\": \"BLOCK with name: 'b1' already EXIST\\\\n\""
gb create $V/b2 ha 2 auth disable prealloc no "$IP" 1GiB --json
expect "create, ha above the hosts" 255 '^$' '"errMsg": "multipath req: 2 > block-hosts: '
gb create $V/b2 ha 1 auth disable prealloc no "$IP" 2GiB --json
expect "create, sparse" 0 '^\{ "IQN": "iqn[^"]*", "PORTAL\(S\)": \[ "[^"]*" \], "RESULT": "SUCCESS" \}$' '^$'
G2=$(sed -E 's/.*gluster-block:([0-9a-f-]{36}).*/\1/' <<<"$OUT")

gb info $V/b1 --json
expect "info" 0 '^\{ "NAME": "b1", "VOLUME": "shimtest_selftest", "GBID": "'"$G1"'", "SIZE": "1.0 GiB", "HA": 1, "IOTIMEOUT": "43 Seconds", "PASSWORD": "[0-9a-f-]{36}", "EXPORTED ON": \[ "'"$IP"'" \] \}$' '^$'
gb info $V/nope --json
expect "info of a missing block" 2 '^$' "\"errMsg\": \"block shimtest_selftest\\\\/nope doesn't exist\""
gb modify $V/b2 size 3GiB --json
expect "modify" 0 '^\{ "IQN": "[^"]*", "SIZE": "3.0 GiB", "SUCCESSFUL ON": \[ "'"$IP"'" \], "RESULT": "SUCCESS" \}$' '^$'
gb modify $V/b2 size 3GiB --json
expect "modify to the same size" 255 '^$' '"errMsg": "request size \(3.0 GiB\) is same as current size \(3.0 GiB\) \]"'
gb modify $V/b2 size 1GiB --json
expect "modify, shrink" 255 '^$' '"errMsg": "Shrink size \?'
gb list $V --json
expect "list" 0 '^\{ "blocks": \[ "b1", "b2" \], "RESULT": "SUCCESS" \}$' '^$'

FILES=$(on "d=\$(mktemp -d); mount -t glusterfs localhost:/$V \$d && stat -c '%n %s %b' \$d/block-store/*; ls \$d/block-meta; umount \$d; rmdir \$d")
if grep -q "/$G1 1073741824 2097152$" <<<"$FILES" && grep -q "/$G2 3221225472 0$" <<<"$FILES" &&
    grep -qx b1 <<<"$FILES" && grep -qx b2 <<<"$FILES"; then
    pass "storage files in the volume: sizes, allocation; meta files"
else fail "storage files: $FILES"; fi
if on "grep -q gluster-block-shim /proc/mounts"; then fail "a shim mount is left"; else pass "no shim mount left"; fi

gb delete $V/b1 --json
expect "delete" 0 '^\{ "SUCCESSFUL ON": \[ "'"$IP"'" \], "RESULT": "SUCCESS" \}$' '^$'
gb delete $V/b1 --json
expect "delete of a missing block" 2 '^$' "\"errMsg\": \"block shimtest_selftest\\\\/b1 doesn't exist\""
gb delete $V/b2 --json
expect "delete the other" 0 '"RESULT": "SUCCESS"' '^$'
gb list $V --json
expect "list, empty again" 0 '"blocks": \[ \]' '^$'
if on "gluster --mode=script volume stop $V force && gluster --mode=script volume delete $V" >/dev/null 2>&1; then
    pass "the volume stops and goes"
else fail "volume stop/delete"; fi
gb delete $V/b2 --json
expect "delete in a missing volume" 2 '^$' '"errMsg": "Volume shimtest_selftest does not exist"'

for args in "create $V/x ha 1 $IP 1GiB --json" "delete $V/x" "info $V/x --json-pretty" "list a/b --json" \
    "modify $V/x auth enable --json" "replace $V/x a b --json" "create $V/x;id ha 1 auth disable prealloc no $IP 1GiB --json"; do
    # shellcheck disable=SC2086
    gb $args
    expect "refused: $args" 2 '^$' 'usage:'
done

echo "failures: $FAILS"
[ $FAILS = 0 ]
