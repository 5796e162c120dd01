#!/usr/bin/env bash
# The testbed floor (issue 13): what a replica-3 1 GiB create and its delete cost on the
# testbed's real nodes with nothing but the node commands they need, Heketi's command lines
# (docs: ../shared/reference/heketi-spec.md 6.4 and 6.6), run by a plain script: one SSH
# connection per node (an OpenSSH master; each batch is one session running its commands in
# order), the three bricks in parallel, then the volume on the first node; the delete stops and
# deletes the volume, then destroys the three bricks in parallel. Hekate's own figures come from
# `hekate-bench testbed` on the same testbed; docs/benchmarks.md puts them side by side.
#
#   bash bench/testbed-floor.sh [rounds]      (testbed up: tests/testbed/testbed.sh up 3 2)
#
# It uses each node's last loop disk (a VG of its own, removed at the end) and probes the
# nodes into one pool (detached at the end), so run it alone, not beside the e2e tests.
# Prints one JSON object: every round's create and delete (ms) and their medians.
set -euo pipefail
rounds=${1:-7}
state=${HT_STATE:-/tmp/hekate-testbed}
# shellcheck disable=SC1091
source "$state/env"
read -r -a names <<<"$HT_NODES"
read -r -a ips <<<"$HT_IPS"
ctl=$(mktemp -d /tmp/hekate-floor.XXXXXX)
ssh_opts=(-i "$HT_KEY" -o UserKnownHostsFile="$HT_KNOWN_HOSTS" -o StrictHostKeyChecking=yes
          -o ControlMaster=auto -o ControlPath="$ctl/%h" -o ControlPersist=120 -o BatchMode=yes
          -o SendEnv=HEKATE_CLUSTER -o SendEnv=HEKATE_TERM)
# The testbed's sshd runs every command through Hekate's node guard (deploy/node/hekate-guard),
# which wants a fencing token: the script is a cluster of its own, at term 1. The floor pays the
# guard as Hekate does.
HEKATE_CLUSTER=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export HEKATE_CLUSTER HEKATE_TERM=1
G="gluster --mode=script --timeout=600"

on() { # on <node index> <commands...>: one session, commands in order, stop at the first failure
    local i=$1; shift
    ssh "${ssh_opts[@]}" "root@${ips[$i]}" "set -e; $*"
}

vg=vg_floor
disk() { local n=${names[$1]}_DISKS; read -r -a d <<<"${!n}"; echo "${d[-1]}"; }

setup() {
    for i in "${!ips[@]}"; do
        on "$i" "lvm pvcreate -qq --metadatasize=128M --dataalignment=256K $(disk "$i") && lvm vgcreate -qq --autobackup=n $vg $(disk "$i")" >/dev/null
    done
    for i in 1 2; do on 0 "$G peer probe ${ips[$i]}" >/dev/null; done
}

teardown() {
    for i in 1 2; do on 0 "$G peer detach ${ips[$i]}" >/dev/null 2>&1 || true; done
    for i in "${!ips[@]}"; do
        on "$i" "lvm vgremove -qq -f $vg; lvm pvremove -qq $(disk "$i")" >/dev/null 2>&1 || true
    done
    for i in "${!ips[@]}"; do ssh "${ssh_opts[@]}" -O exit "root@${ips[$i]}" 2>/dev/null || true; done
    rm -rf "$ctl"
}
trap teardown EXIT

brick_create() { # node, brick id
    local m=/var/lib/heketi/mounts/$vg/brick_$2 dev=/dev/mapper/$vg-brick_$2
    on "$1" "mkdir -p $m
lvm lvcreate -qq --autobackup=n --poolmetadatasize 8192K --chunksize 256K --size 1048576K --thin $vg/tp_$2 --virtualsize 1048576K --name brick_$2
mkfs.xfs -i size=512 -n size=8192 $dev >/dev/null
echo '$dev $m xfs rw,inode64,noatime,nouuid 1 2' >> /etc/fstab
mount -o rw,inode64,noatime,nouuid $dev $m
mkdir $m/brick
chown :2000 $m/brick
chmod 2775 $m/brick"
}

brick_destroy() { # node, brick id; each step its own session, as Heketi's steps are
    local m=/var/lib/heketi/mounts/$vg/brick_$2
    on "$1" "umount $m"
    on "$1" "sed -i.save '/brick_$2/d' /etc/fstab"
    on "$1" "lvm lvremove -qq --autobackup=n -f $vg/brick_$2"
    on "$1" "lvm lvs --noheadings --options=thin_count $vg/tp_$2" >/dev/null
    on "$1" "lvm lvremove -qq --autobackup=n -f $vg/tp_$2"
    on "$1" "rmdir $m"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

setup
creates=() deletes=()
for r in $(seq 1 "$rounds"); do
    id=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    name=vol_$id
    t0=$(now_ms)
    pids=()
    for i in 0 1 2; do brick_create "$i" "${id}$i" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    bricks=""
    for i in 0 1 2; do bricks+="${ips[$i]}:/var/lib/heketi/mounts/$vg/brick_${id}$i/brick "; done
    on 0 "$G volume create $name replica 3 $bricks
$G volume set $name user.heketi.id $id
$G volume start $name" >/dev/null
    t1=$(now_ms)
    on 0 "$G volume stop $name force" >/dev/null || true
    on 0 "$G volume delete $name" >/dev/null
    pids=()
    for i in 0 1 2; do brick_destroy "$i" "${id}$i" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    t2=$(now_ms)
    creates+=($((t1 - t0))) deletes+=($((t2 - t1)))
    echo "round $r: create $((t1 - t0)) ms, delete $((t2 - t1)) ms" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '{"rounds": %d, "create_ms": [%s], "delete_ms": [%s], "create_p50_ms": %s, "delete_p50_ms": %s}\n' \
    "$rounds" "$(IFS=,; echo "${creates[*]}")" "$(IFS=,; echo "${deletes[*]}")" \
    "$(median "${creates[@]}")" "$(median "${deletes[@]}")"
