//! Network namespaces for replicas (needs root): partitions by taking links down, with an
//! optional separate peer network. Used by [`crate::ClusterSpec::netns`] and the drill.

use std::process::Command;

use anyhow::{bail, Context};

/// Network namespaces for replicas: one per replica, each with a veth on a private bridge
/// (`10.79.<n>.0/24`, the host at `.1`, replica `i` at `.1<i>`), so that a replica can be cut
/// off by taking its link down (a partition: it keeps running and keeps reaching whatever
/// is not on the network, like the mock's node model). With a peer network
/// ([`Netns::with_peer_net`]), each replica has a second veth on a second bridge
/// (`10.78.<n>.0/24`) that carries only Raft RPCs, so the peer path can be cut while the
/// API (clients, the load balancer) still reaches every replica. Needs root. Removed on drop.
#[derive(Debug, Clone)]
pub struct Netns {
    tag: String,
    subnet: u8,
    replicas: u64,
    pub peer_net: bool,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip(8)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    pub fn create(replicas: u64) -> anyhow::Result<Netns> {
        Netns::build(replicas, false)
    }

    /// Namespaces with a separate peer network (see the type's documentation).
    pub fn with_peer_net(replicas: u64) -> anyhow::Result<Netns> {
        Netns::build(replicas, true)
    }

    fn build(replicas: u64, peer_net: bool) -> anyhow::Result<Netns> {
        let pid = std::process::id();
        let ns = Netns {
            tag: format!("hk{}", pid % 100_000),
            subnet: (pid % 200 + 20) as u8,
            replicas,
            peer_net,
        };
        let br = ns.bridge();
        ns.destroy();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.79.{}.1/24", ns.subnet), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for id in 1..=replicas {
            let name = ns.name(id);
            let host_end = format!("{}v{id}", ns.tag);
            ip(&["netns", "add", &name])?;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])?;
            ip(&["link", "set", &host_end, "master", &br, "up"])?;
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{}/24", ns.addr(id)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        if peer_net {
            let pbr = ns.peer_bridge();
            ip(&["link", "add", &pbr, "type", "bridge"])?;
            ip(&["link", "set", &pbr, "up"])?;
            for id in 1..=replicas {
                let name = ns.name(id);
                let host_end = format!("{}p{id}", ns.tag);
                ip(&[
                    "link", "add", &host_end, "type", "veth", "peer", "name", "eth1", "netns", &name,
                ])?;
                ip(&["link", "set", &host_end, "master", &pbr, "up"])?;
                let addr = format!("{}/24", ns.peer_addr(id));
                ip(&["-n", &name, "addr", "add", &addr, "dev", "eth1"])?;
                ip(&["-n", &name, "link", "set", "eth1", "up"])?;
            }
        }
        Ok(ns)
    }

    fn peer_bridge(&self) -> String {
        format!("{}pb", self.tag)
    }

    /// Replica `id`'s address on the peer network.
    pub fn peer_addr(&self, id: u64) -> String {
        format!("10.78.{}.{}", self.subnet, 10 + id)
    }

    /// Cuts replica `id`'s peer link only: it still serves clients and the load balancer,
    /// but hears from no other replica.
    pub fn cut_peers(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth1", "down"])
    }

    pub fn heal_peers(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth1", "up"])
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn name(&self, id: u64) -> String {
        format!("{}r{id}", self.tag)
    }

    pub fn addr(&self, id: u64) -> String {
        format!("10.79.{}.{}", self.subnet, 10 + id)
    }

    /// Takes replica `id`'s links down (the peer link too, when there is one): it is alone.
    pub fn partition(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth0", "down"])?;
        if self.peer_net {
            self.cut_peers(id)?;
        }
        Ok(())
    }

    pub fn heal(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth0", "up"])?;
        if self.peer_net {
            self.heal_peers(id)?;
        }
        Ok(())
    }

    /// Removes the namespaces and the bridge (the processes must be gone).
    pub fn destroy(&self) {
        for id in 1..=self.replicas {
            // The host end too: a namespace lingering in the kernel would keep it.
            let _ = ip(&["link", "del", &format!("{}v{id}", self.tag)]);
            let _ = ip(&["link", "del", &format!("{}p{id}", self.tag)]);
            let _ = ip(&["netns", "del", &self.name(id)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
        let _ = ip(&["link", "del", &self.peer_bridge()]);
    }
}
