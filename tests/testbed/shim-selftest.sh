#!/bin/bash
# Self-test for tests/testbed/lvm-shim (run as root).  Everything happens in a
# private mount namespace: tmpfs over the shim's state dir and /dev/mapper, the
# shim bind-mounted over /usr/sbin/lvm, an lvm.conf (activation = 0, filter =
# one fresh loop disk) via LVM_SYSTEM_DIR.  Runs Heketi's command forms.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=$HERE/lvm-shim
STATE=/var/lib/hekate-testbed/lvm
[ "$(id -u)" = 0 ] || { echo "must run as root"; exit 2; }
command -v mkfs.xfs >/dev/null && [ -x /usr/sbin/lvm ] || { echo "need lvm2 + xfsprogs"; exit 2; }

if [ "${1:-}" != --inner ]; then
    mkdir -p /opt/hekate-testbed
    [ -x /opt/hekate-testbed/lvm.real ] || cp /usr/sbin/lvm /opt/hekate-testbed/lvm.real
    made_mapper=; [ -d /dev/mapper ] || { mkdir /dev/mapper; made_mapper=1; }
    mkdir -p "$STATE"
    T=$(mktemp -d /tmp/shim-selftest.XXXXXX)
    unshare --mount --propagation private bash "$0" --inner "$T"
    rc=$?
    # belt and braces: detach any loop still backed by our files
    for f in "$T"/disk.img; do
        for l in $(losetup -j "$f" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
    done
    rm -rf "$T"
    [ -n "$made_mapper" ] && rmdir /dev/mapper 2>/dev/null
    echo "selftest exit code $rc"
    exit $rc
fi

# ---------------------------------------------------------------- inner
T=$2
FAILS=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; FAILS=$((FAILS + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

mount -t tmpfs tmpfs "$STATE"
mount -t tmpfs tmpfs /dev/mapper
mount --bind "$SHIM" /usr/sbin/lvm
truncate -s 2G "$T/disk.img"
DISK=$(losetup --find --show "$T/disk.img")
mkdir -p "$T/etc"
cat >"$T/etc/lvm.conf" <<EOF
global { activation = 0 }
devices {
    global_filter = [ "a|^$DISK\$|", "r|.*|" ]
    obtain_device_list_from_udev = 0
}
backup { backup = 0 archive = 0 }
EOF
export LVM_SYSTEM_DIR=$T/etc
MNT=$T/mnt; mkdir -p "$MNT"

cleanup() {
    umount "$MNT" 2>/dev/null
    for f in "$STATE"/*/*.img; do
        [ -e "$f" ] || continue
        for l in $(losetup -j "$f" -O NAME -n); do losetup -d "$l"; done
    done
    /usr/sbin/lvm vgremove -qq -f vg_t >/dev/null 2>&1
    /usr/sbin/lvm pvremove -qq -ff -y "$DISK" >/dev/null 2>&1
    losetup -d "$DISK"
}
trap cleanup EXIT

L=/usr/sbin/lvm
run() { # run LVM cmd, capture into $OUT $ERR $RC
    OUT=$("$L" "$@" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
}
free_pe() { "$L" vgdisplay -c vg_t 2>/dev/null | awk -F: '{print $16}'; }
alloc_pe() { "$L" vgdisplay -c vg_t 2>/dev/null | awk -F: '{print $15}'; }

run pvcreate -qq --metadatasize=128M --dataalignment=256K "$DISK"
check "pvcreate rc=0, no activation warning" [ $RC = 0 -a -z "$(echo "$ERR" | grep Activation)" ]
run vgcreate -qq --physicalextentsize=4M --autobackup=n vg_t "$DISK"
check "vgcreate rc=0" [ $RC = 0 ]
run vgdisplay -c vg_t
check "vgdisplay -c passes through" [ $RC = 0 -a "$(echo "$OUT" | awk -F: '{print $13}')" = 4096 ]
FREE0=$(free_pe); ALLOC0=$(alloc_pe)
echo "     free PE before: $FREE0 alloc: $ALLOC0"

run lvcreate -qq --autobackup=n --poolmetadatasize 12288K --chunksize 256K --size 9999999K \
    --thin vg_none/tp_a --virtualsize 1048576K --name brick_a
check "lvcreate on missing VG rc=5" [ $RC = 5 ]
check "  ... 'not found' message" grep -q 'Volume group "vg_none" not found' "$T/err"

run lvcreate -qq --autobackup=n --poolmetadatasize 12288K --chunksize 256K --size 1048576K \
    --thin vg_t/tp_a --virtualsize 1048576K --name brick_a
check "lvcreate thin (Heketi form) rc=0" [ $RC = 0 ]
check "  ... /dev/mapper/vg_t-brick_a is a block device" [ -b /dev/mapper/vg_t-brick_a ]
check "vgdisplay -c free PE dropped by 256+3" [ "$(free_pe)" = $((FREE0 - 259)) ]
check "vgdisplay -c alloc PE grew by 259" [ "$(alloc_pe)" = $((ALLOC0 + 259)) ]

run lvcreate -qq --autobackup=y --poolmetadatasize 12288K --chunksize 256K --size 1048576K \
    --thin vg_t/tp_b --virtualsize 1048576K --name brick_a
check "duplicate LV name rc=5" [ $RC = 5 ]
check "  ... 'already exists' message" grep -q 'Logical Volume "brick_a" already exists in volume group "vg_t"' "$T/err"

mkfs.xfs -q -i size=512 -n size=8192 /dev/mapper/vg_t-brick_a
check "mkfs.xfs on thin LV" [ $? = 0 ]
mount /dev/mapper/vg_t-brick_a "$MNT"
check "mount thin LV" [ $? = 0 ]
dd if=/dev/zero of="$MNT/f" bs=1M count=20 status=none conv=fsync

run lvs vg_t/brick_a
check "lvs vg/lv existence rc=0" [ $RC = 0 ]
echo "$OUT" | sed 's/^/     | /'
check "  ... open attr Vwi-aotz--" grep -q 'Vwi-aotz--' <<<"$OUT"
run lvs --noheadings -o lv_name,lv_size,data_percent --units k --nosuffix vg_t/brick_a
check "lvs --units k --nosuffix" grep -Eq 'brick_a +1048576.00 +[0-9.]+' <<<"$OUT"
run lvs --reportformat json -o lv_name,pool_lv vg_t
check "lvs json report" python3 -c 'import json,sys; r=json.loads(sys.argv[1])["report"][0]["lv"]; assert {"lv_name":"brick_a","pool_lv":"tp_a"} in r, r' "$OUT"

run lvremove --autobackup=n -f vg_t/brick_a
check "lvremove refused while mounted rc=5" [ $RC = 5 ]
check "  ... 'filesystem in use' message" grep -q 'Logical volume vg_t/brick_a contains a filesystem in use.' "$T/err"
run vgremove -qq vg_t
check "vgremove refused while LVs exist" eval '[ $RC = 5 ] && grep -q "still contains 2 logical volume" "$T/err"' 
umount "$MNT"

BRICK_LOOP=$(losetup -j "$STATE/vg_t/brick_a.img" -O NAME -n)
# argv[0] dispatch through a symlink named lvs
ln -s "$L" "$T/lvs"
OUT=$("$T/lvs" --noheadings --options=thin_count vg_t/tp_a 2>/dev/null)
check "thin_count = 1 (via lvs symlink)" [ "$(echo $OUT)" = 1 ]
run lvremove --autobackup=n -f vg_t/brick_a
check "lvremove thin rc=0" [ $RC = 0 ]
check "  ... node, image and loop gone" eval '[ ! -e /dev/mapper/vg_t-brick_a -a ! -e "$STATE/vg_t/brick_a.img" ] && ! losetup "$BRICK_LOOP" >/dev/null 2>&1'
run lvs --noheadings --options=thin_count vg_t/tp_a
check "thin_count = 0" [ $RC = 0 -a "$(echo $OUT)" = 0 ]
run lvremove --autobackup=n -f vg_t/tp_a
check "lvremove pool rc=0" [ $RC = 0 ]
check "vgdisplay -c free PE restored" [ "$(free_pe)" = "$FREE0" ]
run lvs --noheadings --options=thin_count vg_t/tp_a
check "lvs of removed pool rc=5" eval '[ $RC = 5 ] && grep -q "Failed to find logical volume \"vg_t/tp_a\"" "$T/err"' 
run lvremove --autobackup=n -f vg_t/tp_a
check "lvremove of missing LV rc=5" [ $RC = 5 ]

# two pools, each with a thin LV; pool removal takes its thin LVs along
for b in b c; do
    run lvcreate -qq --autobackup=n --poolmetadatasize 12288K --chunksize 256K --size 409600K \
        --thin vg_t/tp_$b --virtualsize 2097152K --name brick_$b
    check "lvcreate tp_$b/brick_$b rc=0" [ $RC = 0 ]
done
check "vgdisplay -c free PE: two pools of 100+3" [ "$(free_pe)" = $((FREE0 - 206)) ]
check "vgdisplay -c cur LV = 4" [ "$("$L" vgdisplay -c vg_t | awk -F: '{print $6}')" = 4 ]
run lvs --noheadings -o lv_name,pool_lv,thin_count,lv_attr
check "lvs (all) lists 4 LVs" [ "$(echo "$OUT" | wc -l)" = 4 ]
run lvremove --autobackup=n vg_t/tp_b
check "lvremove pool with thins, no -f: refused" [ $RC = 5 -a -b /dev/mapper/vg_t-brick_b ]
run lvremove --autobackup=n -f vg_t/tp_b vg_t/tp_c
check "lvremove -f pools removes their thins" [ $RC = 0 -a ! -e /dev/mapper/vg_t-brick_b -a ! -e /dev/mapper/vg_t-brick_c ]
check "  ... state empty, free PE restored" [ "$(free_pe)" = "$FREE0" -a -z "$("$L" lvs --noheadings vg_t)" ]

run lvcreate -qq --autobackup=n --poolmetadatasize 12288K --chunksize 256K --size 4194304K \
    --thin vg_t/tp_big --virtualsize 4194304K --name brick_big
check "too-big lvcreate rc=5" [ $RC = 5 ]
check "  ... 'insufficient free space' message" grep -Eq 'Volume group "vg_t" has insufficient free space \([0-9]+ extents\): 1027 required.' "$T/err"
echo "     $ERR"

run vgremove -qq vg_t
check "vgremove rc=0" [ $RC = 0 ]
run pvremove -qq "$DISK"
check "pvremove rc=0" [ $RC = 0 ]
run version
check "lvm version passthrough" eval '[ $RC = 0 ] && grep -q "LVM version" <<<"$OUT"' 

echo "failures: $FAILS"
[ $FAILS = 0 ]
