#!/bin/bash
# testbed.sh -- real GlusterFS nodes on one machine, for Hekate's end-to-end tests.
#
# Why: the SSH executor must be tested against what it will meet in production:
# a real sshd, real glusterd, real lvm2 metadata, real XFS and mounts. This kernel
# has no device-mapper, so thin LVs are emulated by tests/testbed/lvm-shim, and
# gluster-block (not packaged for Debian 12, its kernel target cannot run here) by
# tests/testbed/gluster-block, which keeps its state in the block-hosting volume through a
# real FUSE mount; all else is the real software.
#
# A node is a network namespace (veth into bridge $HT_BRIDGE) plus persistent mount
# and UTS namespaces, and a PID namespace whose PID 1 (node-boot) starts sshd and
# glusterd. Killing PID 1 powers the node off. Each node has its own /etc (overlay),
# /var/lib/glusterd, /var/lib/heketi, /root, /dev/mapper, LVM shim state and loop disks;
# /usr/local/sbin (empty on the host) is $HT_OPT/sbin, holding the gluster-block shim.
#
#   testbed.sh up [N] [DISKS]   create N nodes (default 3) with DISKS 20G disks each (2)
#   testbed.sh down             remove everything (idempotent; safe after a half-up)
#   testbed.sh exec NODE CMD..  run CMD inside NODE (as an sshd child would see it)
#   testbed.sh poweroff NODE | boot NODE | status
#
# `up` writes $HT_STATE/env (shell) with HT_NODES, HT_IPS, HT_KEY, HT_KNOWN_HOSTS and
# <node>_DISKS, which the e2e tests read, and $HT_STATE/topology.json, a heketi-cli topology
# of the nodes (zone = node number, every loop disk) for `hekate-cli topology load` against
# `hekate dev --testbed`.
set -euo pipefail

HT_STATE=${HT_STATE:-/tmp/hekate-testbed}
HT_NSDIR=${HT_NSDIR:-/run/hekate-testbed}
HT_PREFIX=${HT_PREFIX:-htnode}
HT_BRIDGE=${HT_BRIDGE:-htbr0}
HT_NET=${HT_NET:-10.78.0}
HT_OPT=/opt/hekate-testbed            # real lvm binary and the shims, host-wide
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[testbed %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
ip_of() { echo "$HT_NET.$((10 + $1))"; }

node_exec() {
    local n=$1; shift
    nsenter --net=/run/netns/"$n" --mount="$HT_NSDIR/$n.mnt" --uts="$HT_NSDIR/$n.uts" \
        --pid="$HT_NSDIR/$n.pid" -- "$@"
}

wait_port() { # ip port tries(0.1s)
    local i
    for ((i = 0; i < $3; i++)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

install_packages() {
    local -A need=([sshd]=openssh-server [ssh-keygen]=openssh-client [glusterd]=glusterfs-server
        [mount.glusterfs]=glusterfs-client [mkfs.xfs]=xfsprogs [lvm]=lvm2 [python3]=python3
        [nsenter]=util-linux [losetup]=mount [ip]=iproute2 [getfattr]=attr)
    local missing=() c
    for c in "${!need[@]}"; do
        PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$c" >/dev/null || missing+=("${need[$c]}")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

boot() { # node
    local n=$1 D=$HT_STATE/$1
    mountpoint -q "$HT_NSDIR/$n.pid" && umount "$HT_NSDIR/$n.pid"
    touch "$HT_NSDIR/$n.pid"
    setsid unshare --pid="$HT_NSDIR/$n.pid" --fork --kill-child -- \
        nsenter --net=/run/netns/"$n" --mount="$HT_NSDIR/$n.mnt" --uts="$HT_NSDIR/$n.uts" -- \
        "$HT_OPT/node-boot" "$D" </dev/null >>"$D/boot.log" 2>&1 &
    echo $! >"$D/boot.pid"
    wait_port "$(cat "$D/ip")" 22 100 || die "sshd of $n did not start (see $D/boot.log)"
    wait_port "$(cat "$D/ip")" 24007 300 || die "glusterd of $n did not start (see $D/boot.log)"
    local t
    for ((t = 0; t < 100; t++)); do
        node_exec "$n" gluster --mode=script pool list >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "glusterd of $n does not answer"
}

poweroff() { # node: SIGKILL PID 1; the kernel kills the rest of the namespace
    local n=$1 p
    p=$(cat "$HT_STATE/$n/boot.pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 50); do
        p=$(ip netns pids "$n" 2>/dev/null || true)
        [[ -z $p ]] && return 0
        kill -KILL $p 2>/dev/null || true
        sleep 0.1
    done
}

make_node() { # index disks
    local i=$1 n ip D k loop filter=""
    n=$HT_PREFIX$i ip=$(ip_of "$i") D=$HT_STATE/$HT_PREFIX$i
    mkdir -p "$D"/{etc-upper/lvm,etc-work,glusterd,glusterfs-log,heketi,lvm,disks,ssh,root}
    echo "$ip" >"$D/ip"
    cp -a /var/lib/glusterd/groups /var/lib/glusterd/hooks "$D/glusterd/" 2>/dev/null || true
    echo "$n" >"$D/etc-upper/hostname"
    cp "$HT_STATE/hosts" "$D/etc-upper/hosts"
    echo "# /etc/fstab of $n" >"$D/etc-upper/fstab"
    echo "$D" >"$D/etc-upper/hekate-testbed-node"
    : >"$D/disks.list"
    for ((k = 0; k < $2; k++)); do
        truncate -s 20G "$D/disks/disk$k.img"
        loop=$(losetup --find --show "$D/disks/disk$k.img")
        echo "$loop" >>"$D/disks.list"
        filter+="\"a|^$loop\$|\", "
    done
    cat >"$D/etc-upper/lvm/lvm.conf" <<EOF
# $n: only its own loop disks; no device-mapper in this kernel (see lvm-shim)
devices { global_filter = [ $filter"r|.*|" ] obtain_device_list_from_udev = 0 use_devicesfile = 0 }
global { activation = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
EOF
    ssh-keygen -q -t ed25519 -N '' -C "$n" -f "$D/ssh/host_key"
    echo "$ip $(cut -d' ' -f1,2 "$D/ssh/host_key.pub")" >>"$HT_STATE/known_hosts"
    cat >"$D/ssh/sshd_config" <<EOF
ListenAddress $ip:22
HostKey $D/ssh/host_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $HT_STATE/authorized_keys
UsePAM no
StrictModes no
UseDNS no
MaxStartups 200:30:400
MaxSessions 200
# Hekate's node guard, as deploy/README.md ("Node guard") installs it: every command runs
# only with a current fencing token; its log is the node's command record.
AcceptEnv HEKATE_CLUSTER HEKATE_TERM
ForceCommand $HT_OPT/hekate-guard --state $D/guard --log $D/commands.log
EOF
    ip netns add "$n"
    ip link add "ht$i" type veth peer name eth0 netns "$n"
    ip link set "ht$i" master "$HT_BRIDGE" up
    ip -n "$n" addr add "$ip/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    touch "$HT_NSDIR/$n.mnt" "$HT_NSDIR/$n.uts"
    # The node's private view: its own /etc (overlay: sed -i on fstab renames files),
    # glusterd state, brick mount points, LV device nodes, shim state, shims for lvm,
    # systemctl and gluster-block.
    nsenter --net=/run/netns/"$n" unshare --mount="$HT_NSDIR/$n.mnt" --uts="$HT_NSDIR/$n.uts" \
        --propagation private -- bash -euc "
            umount -l '$HT_NSDIR' 2>/dev/null || true
            umount -l /run/netns 2>/dev/null || true
            mount --bind '$D/glusterd' /var/lib/glusterd
            mount --bind '$D/glusterfs-log' /var/log/glusterfs
            mount --bind '$D/heketi' /var/lib/heketi
            mount --bind '$D/root' /root        # the host's dotfiles stay out of ssh sessions
            mount --bind '$D/lvm' /var/lib/hekate-testbed/lvm
            mount -t overlay overlay -o lowerdir=/etc,upperdir='$D/etc-upper',workdir='$D/etc-work' /etc
            mount -t tmpfs -o mode=0755 tmpfs /dev/mapper
            mount --bind '$HT_OPT/lvm-shim' /usr/sbin/lvm
            mount --bind '$HT_OPT/systemctl' /usr/bin/systemctl
            mount --bind '$HT_OPT/sbin' /usr/local/sbin   # gluster-block (shim), on root's PATH
            hostname '$n'"
    boot "$n"
}

# The heketi-cli topology of nodes NAME... (the i-th at ip_of i, in zone i), with the loop
# disks listed in $HT_STATE/<name>/disks.list.
topology_json() {
    local n d i=0 nsep="" dsep=""
    printf '{"clusters": [{"nodes": ['
    for n in "$@"; do
        i=$((i + 1))
        printf '%s\n  {"node": {"hostnames": {"manage": ["%s"], "storage": ["%s"]}, "zone": %d},\n   "devices": [' \
            "$nsep" "$(ip_of "$i")" "$(ip_of "$i")" "$i"
        dsep=""
        while read -r d; do
            [[ -n $d ]] || continue
            printf '%s{"name": "%s", "destroydata": false}' "$dsep" "$d"
            dsep=", "
        done <"$HT_STATE/$n/disks.list"
        printf ']}'
        nsep=","
    done
    printf '\n]}]}\n'
}

up() {
    local N=${1:-3} DISKS=${2:-2} i names=() ips=()
    [[ $(id -u) == 0 ]] || die "must run as root"
    [[ -e $HT_STATE/env ]] && die "$HT_STATE/env exists: run '$0 down' first"
    install_packages
    mkdir -p "$HT_STATE" "$HT_NSDIR" "$HT_OPT" /var/lib/hekate-testbed/lvm /var/lib/heketi /dev/mapper
    # the real lvm, reachable by the shim once the shim hides /usr/sbin/lvm in a node
    cmp -s /usr/sbin/lvm "$HT_OPT/lvm.real" || cp /usr/sbin/lvm "$HT_OPT/lvm.real"
    install -m 755 "$HERE/lvm-shim" "$HT_OPT/lvm-shim"
    install -m 755 "$HERE/systemctl" "$HT_OPT/systemctl"
    install -d "$HT_OPT/sbin"
    install -m 755 "$HERE/gluster-block" "$HT_OPT/sbin/gluster-block"
    install -m 755 "$HERE/node-boot" "$HT_OPT/node-boot"
    install -m 755 "$HERE/../../deploy/node/hekate-guard" "$HT_OPT/hekate-guard"
    ssh-keygen -q -t ed25519 -N '' -C hekate-testbed -f "$HT_STATE/id_ed25519"
    cp "$HT_STATE/id_ed25519.pub" "$HT_STATE/authorized_keys"
    : >"$HT_STATE/known_hosts"
    mountpoint -q "$HT_NSDIR" || { mount --bind "$HT_NSDIR" "$HT_NSDIR"; mount --make-private "$HT_NSDIR"; }
    ip link show "$HT_BRIDGE" >/dev/null 2>&1 || ip link add "$HT_BRIDGE" type bridge
    ip link set "$HT_BRIDGE" up
    ip -br addr show "$HT_BRIDGE" | grep -qw "$HT_NET.1/24" || ip addr add "$HT_NET.1/24" dev "$HT_BRIDGE"
    { echo "127.0.0.1 localhost"; for ((i = 1; i <= N; i++)); do echo "$(ip_of $i) $HT_PREFIX$i"; done; } >"$HT_STATE/hosts"
    for ((i = 1; i <= N; i++)); do
        log "node $HT_PREFIX$i at $(ip_of $i)"
        make_node "$i" "$DISKS"
        names+=("$HT_PREFIX$i") ips+=("$(ip_of $i)")
    done
    {
        echo "HT_STATE=$HT_STATE"
        echo "HT_KEY=$HT_STATE/id_ed25519"
        echo "HT_KNOWN_HOSTS=$HT_STATE/known_hosts"
        echo "HT_NODES=\"${names[*]}\""
        echo "HT_IPS=\"${ips[*]}\""
        for n in "${names[@]}"; do echo "${n}_DISKS=\"$(paste -sd' ' "$HT_STATE/$n/disks.list")\""; done
    } >"$HT_STATE/env.tmp"
    mv "$HT_STATE/env.tmp" "$HT_STATE/env"
    topology_json "${names[@]}" >"$HT_STATE/topology.json.tmp"
    mv "$HT_STATE/topology.json.tmp" "$HT_STATE/topology.json"
    log "up: ${names[*]} (ssh -i $HT_STATE/id_ed25519 -o UserKnownHostsFile=$HT_STATE/known_hosts root@$(ip_of 1))"
}

down() {
    local n D p loop
    for D in "$HT_STATE"/"$HT_PREFIX"*; do
        [[ -d $D ]] || continue
        n=$(basename "$D")
        # client-side (host) FUSE mounts of this testbed's volumes
        { grep " fuse.glusterfs " /proc/mounts || true; } | awk -v net="$HT_NET." 'index($1, net) == 1 {print $2}' |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        poweroff "$n"
        # brick mounts and LV loops live in the node's mount namespace
        if [[ -e $HT_NSDIR/$n.mnt ]]; then
            nsenter --mount="$HT_NSDIR/$n.mnt" -- bash -c '
                # FUSE mounts the gluster-block shim left (it unmounts after each command)
                grep " fuse.glusterfs " /proc/mounts | awk "{print \$2}" |
                    while read -r m; do umount -l "$m"; done
                grep -E " /var/lib/heketi/" /proc/mounts | awk "{print \$2}" | sort -r |
                    while read -r m; do umount -l "$m"; done
                for f in /var/lib/hekate-testbed/lvm/*/*.img; do
                    [ -e "$f" ] || continue
                    losetup -j "$f" | cut -d: -f1 | xargs -r -n1 losetup -d
                done' 2>/dev/null || true
        fi
        for p in mnt uts pid; do
            umount "$HT_NSDIR/$n.$p" 2>/dev/null || umount -l "$HT_NSDIR/$n.$p" 2>/dev/null || true
            rm -f "$HT_NSDIR/$n.$p"
        done
        ip netns del "$n" 2>/dev/null || true
        for f in "$D"/disks/*.img "$D"/lvm/*/*.img; do
            [[ -e $f ]] || continue
            losetup -j "$f" | cut -d: -f1 | while read -r loop; do losetup -d "$loop" || true; done
        done
    done
    ip link del "$HT_BRIDGE" 2>/dev/null || true
    mountpoint -q "$HT_NSDIR" && umount -l "$HT_NSDIR"
    rm -rf "$HT_STATE" "$HT_NSDIR"
    log "down"
}

status() {
    local n
    for n in $( [[ -e $HT_STATE/env ]] && . "$HT_STATE/env" && echo "$HT_NODES"); do
        if node_exec "$n" true 2>/dev/null; then
            echo "$n $(cat "$HT_STATE/$n/ip") up: $(node_exec "$n" gluster --mode=script pool list 2>&1 | tail -n +2 | awk '{print $2":"$3}' | paste -sd' ')"
        else echo "$n $(cat "$HT_STATE/$n/ip") powered off"; fi
    done
}

cmd=${1:-}
shift || true
case $cmd in
    up) up "$@" ;;
    down) down ;;
    exec) node_exec "$@" ;;
    poweroff) poweroff "$1" ;;
    boot) boot "$1" ;;
    status) status ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
esac
