//! The SSH executor: the `Executor` verbs as Heketi's command lines (`commands`) run over the
//! SSH transport (`ssh`) and read back with `parse`. Every verb is idempotent: it checks what
//! is already in place (VG, LV, fstab line, mount, volume) before acting, and every destroy
//! treats "already gone" as done. gluster-block's verbs are one command each (spec 6.8): a
//! delete of a missing block volume and a resize to the size already in place are done.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::commands::{Argv, CmdConfig};
use super::parse;
use super::ssh::{Output, SshTransport};
use super::{
    BlockSpec, BlockTarget, BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, GlusterVolume, HealBrick,
    NodeInventory, VgInventory, VolumeOwner, VolumeSpec, OWNER_OPTION,
};

/// Heketi's batch timeouts (spec 6.1).
const DEVICE: Duration = Duration::from_secs(5 * 60);
const BRICK: Duration = Duration::from_secs(10 * 60);
/// Every gluster-block command (spec 6.1: 10 min).
const BLOCK: Duration = Duration::from_secs(10 * 60);

pub struct SshExecutor {
    t: SshTransport,
    c: CmdConfig,
    /// One lock per host around fstab edits: a line's removal replaces the file by rename, so
    /// a concurrent removal or append could be lost. Heketi runs brick creates and destroys of
    /// one node in parallel, unguarded.
    fstab_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn failed(o: &Output) -> ExecError {
    ExecError::Failed(o.error_text())
}

impl SshExecutor {
    pub fn new(transport: SshTransport, cmds: CmdConfig) -> SshExecutor {
        SshExecutor {
            fstab_locks: Default::default(),
            t: transport,
            c: cmds,
        }
    }

    fn gluster_timeout(&self) -> Duration {
        Duration::from_secs(60 * (10u64).max(1 + (u64::from(self.c.gluster_cli_timeout) + 1) / 60))
    }

    async fn run(&self, host: &str, cmd: &Argv, timeout: Duration) -> ExecResult<Output> {
        self.t.run(host, cmd, timeout).await
    }

    async fn must(&self, host: &str, cmd: &Argv, timeout: Duration) -> ExecResult<Output> {
        let o = self.run(host, cmd, timeout).await?;
        if o.ok() {
            Ok(o)
        } else {
            Err(failed(&o))
        }
    }

    async fn vg_info(&self, host: &str, vg: &str) -> ExecResult<Option<DeviceInfo>> {
        let o = self.run(host, &self.c.vgdisplay(vg), DEVICE).await?;
        if !o.ok() {
            return Ok(None);
        }
        parse::vgdisplay(&o.stdout).map(Some)
    }

    async fn volume_info(&self, host: &str, name: &str) -> ExecResult<parse::VolInfo> {
        let o = self
            .run(host, &self.c.volume_info_xml(name), self.gluster_timeout())
            .await?;
        parse::volume_info(&o.stdout)
    }

    /// Whose volume `name` is, from `volume info --xml` (absent when Gluster says it does not
    /// exist; any other failure is an error, never taken for "absent").
    async fn owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        let info = self.volume_info(host, name).await?;
        if info.op_ret != 0 {
            if info.op_errstr.contains("does not exist") {
                return Ok(VolumeOwner::Absent);
            }
            return Err(ExecError::Failed(format!(
                "volume info {name}: {}",
                info.op_errstr
            )));
        }
        Ok(VolumeOwner::from_mark(info.mark.as_deref()))
    }

    fn fstab_lock(&self, host: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.fstab_locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(host.to_string()).or_default().clone()
    }

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|s| s.to_string()).collect()
    }
}

#[async_trait]
impl Executor for SshExecutor {
    async fn claim(&self, host: &str) -> ExecResult<()> {
        self.t.claim_host(host).await
    }

    async fn glusterd_check(&self, host: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        self.must(host, &self.c.glusterd_status(), BRICK)
            .await
            .map(|_| ())
    }

    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        for cmd in self.c.peer_probe(new_peer) {
            self.must(host, &cmd, self.gluster_timeout()).await?;
        }
        Ok(())
    }

    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        self.must(host, &self.c.peer_detach(peer), self.gluster_timeout())
            .await
            .map(|_| ())
    }

    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        self.t.begin_step(host).await;
        if self.vg_info(host, vg).await?.is_none() {
            self.t
                .batch(host, &self.c.device_setup(device, vg, destroydata), DEVICE)
                .await?;
        }
        let mut info = self
            .vg_info(host, vg)
            .await?
            .ok_or_else(|| ExecError::Failed(format!("volume group {vg} missing after setup")))?;
        if let Ok(o) = self.must(host, &self.c.pvs_json(device), DEVICE).await {
            info.pv_uuid = parse::pv_uuid(&o.stdout).unwrap_or_default();
        }
        Ok(info)
    }

    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        let cmds = self.c.device_teardown(vg, device);
        if self.vg_info(host, vg).await?.is_some() {
            self.must(host, &cmds[0], DEVICE).await?;
        }
        let o = self.run(host, &cmds[1], DEVICE).await?;
        if !o.ok() && !o.error_text().contains("No PV") && !o.error_text().contains("not found") {
            return Err(failed(&o));
        }
        let _ = self.run(host, &self.c.device_rmdir(vg), DEVICE).await;
        Ok(())
    }

    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.t.begin_step(host).await;
        self.vg_info(host, vg)
            .await?
            .ok_or_else(|| ExecError::Failed(format!("Volume group \"{vg}\" not found")))
    }

    async fn brick_create(&self, host: &str, b: &BrickSpec) -> ExecResult<()> {
        b.check_ours()?;
        self.t.begin_step(host).await;
        let mount = b.mount_dir();
        let cmds = self.c.brick_create(
            &b.vg,
            &b.tp(),
            &b.lv(),
            &mount,
            b.tp_size,
            b.meta_size,
            b.size,
            b.gid,
            b.arbiter,
        );
        let devnode = format!("/dev/mapper/{}-{}", b.vg, b.lv());
        let result = async {
            self.must(host, &cmds[0], BRICK).await?; // mkdir -p
            // lvcreate first; "already exists" means a re-run (one LVM call less than
            // asking lvs first).
            let lv = self.run(host, &cmds[1], BRICK).await?;
            let exists = !lv.ok();
            if exists && !lv.error_text().contains("already exists") {
                return Err(failed(&lv));
            }
            if !exists {
                self.must(host, &cmds[2], BRICK).await?; // mkfs.xfs
            }
            // A resumed create (the previous leader died mid-way) may find the LV without a
            // complete filesystem: mkfs.xfs killed part-way. This brick serves no data yet
            // (bricks are created before they join a volume), so it is formatted again.
            let resumed = exists;
            let fstab = self.fstab_lock(host);
            let _fstab = fstab.lock().await;
            let in_fstab = self.run(host, &self.c.fstab_has(&devnode), BRICK).await?.ok();
            if !in_fstab {
                self.must(host, &cmds[3], BRICK).await?; // awk >> fstab
            }
            drop(_fstab);
            let mounted = self
                .run(host, &Self::argv(&["mountpoint", "-q", &mount]), BRICK)
                .await?
                .ok();
            if !mounted {
                let m = self.run(host, &cmds[4], BRICK).await?; // mount
                if !m.ok() {
                    if !resumed {
                        return Err(failed(&m));
                    }
                    tracing::warn!(host, lv = %b.lv(), "brick LV of a resumed create does not mount; formatting it again");
                    let mut force = cmds[2].clone();
                    force.insert(1, "-f".into());
                    self.must(host, &force, BRICK).await?;
                    self.must(host, &cmds[4], BRICK).await?;
                }
            }
            self.must(
                host,
                &Self::argv(&["mkdir", "-p", &format!("{mount}/brick")]),
                BRICK,
            )
            .await?;
            for c in cmds.iter().skip(6) {
                self.must(host, c, BRICK).await?; // chown / chmod
            }
            Ok::<_, ExecError>(())
        }
        .await;
        if let Err(e) = result {
            let _ = self.brick_destroy(host, b).await;
            return Err(e);
        }
        Ok(())
    }

    async fn brick_destroy(&self, host: &str, b: &BrickSpec) -> ExecResult<bool> {
        b.check_ours()?;
        self.t.begin_step(host).await;
        let mount = b.mount_dir();
        let um = self.run(host, &self.c.umount(&mount), BRICK).await?;
        if !um.ok() {
            let mounts = self.must(host, &Self::argv(&["mount"]), BRICK).await?;
            if mounts
                .stdout
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(mount.as_str()))
            {
                return Err(failed(&um));
            }
        }
        if !mount.starts_with("/run/gluster/") && !mount.starts_with("/var/run/gluster/") {
            let fstab = self.fstab_lock(host);
            let _fstab = fstab.lock().await;
            let devnode = format!("/dev/mapper/{}-{}", b.vg, b.lv());
            for cmd in self.c.fstab_remove(&devnode, &mount) {
                self.must(host, &cmd, BRICK).await?;
            }
        }
        let lv = self.run(host, &self.c.lvremove(&b.vg, &b.lv()), BRICK).await?;
        let gone =
            |o: &Output| o.error_text().contains("not found") || o.error_text().contains("Failed to find");
        if !lv.ok() && !gone(&lv) {
            return Err(failed(&lv));
        }
        let count = self.run(host, &self.c.thin_count(&b.vg, &b.tp()), BRICK).await?;
        let reclaimed = if count.ok() {
            if parse::thin_count(&count.stdout)? == 0 {
                let tp = self.run(host, &self.c.lvremove(&b.vg, &b.tp()), BRICK).await?;
                if !tp.ok() && !gone(&tp) {
                    return Err(failed(&tp));
                }
                true
            } else {
                false
            }
        } else {
            gone(&count)
        };
        let _ = self.run(host, &self.c.rmdir(&mount), BRICK).await;
        Ok(reclaimed)
    }

    async fn volume_create(&self, host: &str, v: &VolumeSpec) -> ExecResult<()> {
        self.t.begin_step(host).await;
        let t = self.gluster_timeout();
        let cmds = self.c.volume_create(v);
        // Create first, and look only if Gluster says it exists (a re-run after a partial
        // success): one CLI round trip less on the common path.
        let first = self.run(host, &cmds[0], t).await?;
        if first.ok() {
            for cmd in &cmds[1..] {
                self.must(host, cmd, t).await?;
            }
            return Ok(());
        }
        if !first.error_text().contains("already exists") {
            return Err(failed(&first));
        }
        let info = self.volume_info(host, &v.name).await?;
        let owner = VolumeOwner::from_mark(info.mark.as_deref());
        // Unmarked on exactly this volume's bricks (named by its brick ids): an earlier
        // attempt stopped between `volume create` and setting the mark; the sets below mark it.
        if !(matches!(owner, VolumeOwner::Unmarked) && info.bricks == v.bricks) {
            owner.check(&v.name, &v.id)?;
        }
        if info.bricks != v.bricks {
            return Err(ExecError::Failed(format!(
                "volume {} exists with other bricks",
                v.name
            )));
        }
        // The earlier attempt may have stopped before its options or its start.
        for cmd in cmds
            .iter()
            .filter(|c| c.get(4).map(String::as_str) == Some("set"))
        {
            self.must(host, cmd, t).await?;
        }
        if info.status != "Started" {
            self.must(host, &self.c.gluster(&["volume", "start", &v.name]), t)
                .await?;
        }
        Ok(())
    }

    async fn volume_expand(&self, host: &str, v: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        self.t.begin_step(host).await;
        let info = self.volume_info(host, &v.name).await?;
        if info.op_ret == 0 {
            VolumeOwner::from_mark(info.mark.as_deref()).check(&v.name, &v.id)?;
        }
        let missing: Vec<String> = new_bricks
            .iter()
            .filter(|b| !info.bricks.contains(b))
            .cloned()
            .collect();
        for cmd in self.c.add_bricks(v, &missing) {
            self.must(host, &cmd, self.gluster_timeout()).await?;
        }
        if self.c.rebalance_on_expansion {
            if let Err(e) = self
                .must(host, &self.c.rebalance(&v.name), self.gluster_timeout())
                .await
            {
                tracing::warn!(volume = %v.name, "rebalance start failed: {e}");
            }
        }
        Ok(())
    }

    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        let owner = self.owner(host, name).await?;
        owner.check(name, id)?;
        if owner == VolumeOwner::Absent {
            return Ok(());
        }
        let _ = self
            .run(host, &self.c.volume_stop(name), self.gluster_timeout())
            .await;
        let o = self
            .run(host, &self.c.volume_delete(name), self.gluster_timeout())
            .await?;
        if o.ok() || o.error_text().contains("does not exist") {
            return Ok(());
        }
        Err(ExecError::Failed(format!(
            "Unable to delete volume {name}: {}",
            o.error_text()
        )))
    }

    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        self.t.begin_step(host).await;
        self.owner(host, name).await
    }

    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        self.t.begin_step(host).await;
        let info = self.volume_info(host, volume).await?;
        if info.bricks.iter().any(|b| b == new) {
            return Ok(());
        }
        self.must(
            host,
            &self.c.replace_brick(volume, old, new),
            self.gluster_timeout(),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            ExecError::Failed(format!(
                "Unable to replace brick {old} with {new} for volume {volume}: {e}"
            ))
        })
    }

    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        self.t.begin_step(host).await;
        let info = self.volume_info(host, volume).await?;
        if info.op_ret != 0 {
            return Err(ExecError::Failed(info.op_errstr));
        }
        Ok(info.bricks)
    }

    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>> {
        self.t.begin_step(host).await;
        let existing = self.volume_info(host, clone).await?;
        if existing.op_ret == 0 {
            VolumeOwner::from_mark(existing.mark.as_deref()).check(clone, clone_id)?;
        } else if !existing.op_errstr.contains("does not exist") {
            return Err(ExecError::Failed(format!(
                "volume info {clone}: {}",
                existing.op_errstr
            )));
        }
        if existing.op_ret != 0 || existing.bricks.is_empty() {
            let snap = format!("tmpsnap_{}", hex::encode(rand::random::<[u8; 8]>()));
            let g = |rest: &[&str]| {
                let mut a = vec![
                    "gluster".to_string(),
                    "--mode=script".into(),
                    format!("--timeout={}", self.c.gluster_cli_timeout),
                    "--xml".into(),
                ];
                a.extend(rest.iter().map(|s| s.to_string()));
                a
            };
            let t = self.gluster_timeout();
            self.must(
                host,
                &g(&["snapshot", "create", &snap, volume, "no-timestamp"]),
                t,
            )
            .await?;
            let result = async {
                self.must(host, &g(&["snapshot", "activate", &snap]), t).await?;
                self.must(host, &g(&["snapshot", "clone", clone, &snap]), t)
                    .await?;
                // Gluster copies the origin's options, its `user.heketi.id` included: the
                // clone gets its own mark before it starts.
                self.must(host, &g(&["volume", "set", clone, OWNER_OPTION, clone_id]), t)
                    .await?;
                self.must(host, &g(&["volume", "start", clone]), t).await?;
                Ok::<_, ExecError>(())
            }
            .await;
            let _ = self.run(host, &g(&["snapshot", "deactivate", &snap]), t).await;
            let _ = self.run(host, &g(&["snapshot", "delete", &snap]), t).await;
            result?;
        }
        let info = self.volume_info(host, clone).await?;
        // LV names of clone bricks follow Gluster's snapshot layout: the mount directory's name.
        Ok(info
            .bricks
            .iter()
            .map(|b| {
                let dir = b
                    .rsplit_once(':')
                    .map(|x| x.1)
                    .unwrap_or(b)
                    .trim_end_matches("/brick");
                let lv = dir.rsplit('/').next().unwrap_or_default().to_string();
                (b.clone(), lv)
            })
            .collect())
    }

    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory> {
        self.t.begin_step(host).await;
        let mut inv = NodeInventory::default();
        let vgs = self.must(host, &self.c.vgs_json(), DEVICE).await?;
        for vg in parse::vg_names(&vgs.stdout)? {
            let info = self.vg_info(host, &vg).await?.unwrap_or_default();
            inv.vgs.insert(
                vg,
                VgInventory {
                    total_kib: info.total_kib,
                    used_kib: info.used_kib,
                    lvs: Default::default(),
                },
            );
        }
        if !inv.vgs.is_empty() {
            let lvs = self.must(host, &self.c.lvs_all_json(), DEVICE).await?;
            for (vg, lv, pool) in parse::lvs_all(&lvs.stdout)? {
                inv.vgs.entry(vg).or_default().lvs.insert(lv, pool);
            }
        }
        let mounts = self
            .must(host, &Self::argv(&["cat", "/proc/mounts"]), DEVICE)
            .await?;
        inv.mounts = parse::mount_points(&mounts.stdout).into_iter().collect();
        let fstab = self
            .run(host, &Self::argv(&["cat", &self.c.fstab]), DEVICE)
            .await?;
        inv.fstab = parse::mount_points(&fstab.stdout).into_iter().collect();
        let peers = self
            .must(host, &self.c.peer_status_xml(), self.gluster_timeout())
            .await?;
        inv.peers = parse::peers(&peers.stdout)?.into_iter().collect();
        Ok(inv)
    }

    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>> {
        self.t.begin_step(host).await;
        let o = self
            .must(host, &self.c.volume_info_all_xml(), self.gluster_timeout())
            .await?;
        Ok(parse::volumes_all(&o.stdout)?.into_iter().collect())
    }

    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>> {
        self.t.begin_step(host).await;
        let o = self
            .must(host, &self.c.heal_info_xml(volume), self.gluster_timeout())
            .await?;
        parse::heal_info(&o.stdout)
    }
    async fn block_create(&self, host: &str, spec: &BlockSpec) -> ExecResult<BlockTarget> {
        let cmd = self.c.block_create(spec)?;
        self.t.begin_step(host).await;
        // With auth the answer holds the target's password: it is parsed, never logged
        // (the transport logs no output; errors quote it redacted).
        let o = self.run(host, &cmd, BLOCK).await?;
        parse::block_create(&o, &spec.hosts, spec.size_gib)
    }

    async fn block_info(&self, host: &str, bhv: &str, name: &str) -> ExecResult<Option<BlockTarget>> {
        let cmd = self.c.block_info(bhv, name)?;
        self.t.begin_step(host).await;
        let o = self.run(host, &cmd, BLOCK).await?;
        parse::block_info(&o, bhv, name)
    }

    async fn block_modify(&self, host: &str, bhv: &str, name: &str, size_gib: u64) -> ExecResult<()> {
        let cmd = self.c.block_modify(bhv, name, size_gib)?;
        self.t.begin_step(host).await;
        let o = self.run(host, &cmd, BLOCK).await?;
        parse::block_modify(&o)
    }

    async fn block_delete(&self, host: &str, bhv: &str, name: &str) -> ExecResult<()> {
        let cmd = self.c.block_delete(bhv, name)?;
        self.t.begin_step(host).await;
        let o = self.run(host, &cmd, BLOCK).await?;
        parse::block_delete(&o, bhv, name)
    }

    async fn block_list(&self, host: &str, bhv: &str) -> ExecResult<Vec<String>> {
        let cmd = self.c.block_list(bhv)?;
        self.t.begin_step(host).await;
        let o = self.run(host, &cmd, BLOCK).await?;
        parse::block_list(&o, bhv)
    }
}
