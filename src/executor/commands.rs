//! The command lines run on Gluster nodes, as argv vectors: Heketi's exact commands (spec
//! section 6), built by pure functions. Quoting happens once, at the transport
//! ([`shell_line`]); names, paths and options were validated at the API before any of this.

/// Executor settings that shape command lines (`sshexec` keys of heketi.json).
#[derive(Debug, Clone, PartialEq)]
pub struct CmdConfig {
    pub fstab: String,
    pub mountopts: String,
    pub backup_lvm_metadata: bool,
    pub gluster_cli_timeout: u32,
    pub pv_data_alignment: String,
    pub vg_physicalextentsize: String,
    pub lv_chunksize: String,
    pub xfs_sw: i64,
    pub xfs_su: i64,
    /// Prefix of `/usr/sbin/lvm` and `/usr/bin/udevadm` (`lvm_wrapper`).
    pub lvm_wrapper: String,
    pub snapshot_limit: i64,
    pub rebalance_on_expansion: bool,
}

impl Default for CmdConfig {
    fn default() -> Self {
        CmdConfig {
            fstab: "/etc/fstab".into(),
            mountopts: "rw,inode64,noatime,nouuid".into(),
            backup_lvm_metadata: false,
            gluster_cli_timeout: 600,
            pv_data_alignment: "256K".into(),
            vg_physicalextentsize: "4M".into(),
            lv_chunksize: "256K".into(),
            xfs_sw: 0,
            xfs_su: 0,
            lvm_wrapper: String::new(),
            snapshot_limit: 0,
            rebalance_on_expansion: true,
        }
    }
}

pub type Argv = Vec<String>;

fn argv<const N: usize>(parts: [&str; N]) -> Argv {
    parts.iter().map(|s| s.to_string()).collect()
}

/// One line for the remote shell: every argument quoted (single quotes where needed).
pub fn shell_line(argv: &[String], sudo: bool) -> String {
    let quoted: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    let line = quoted.join(" ");
    if sudo {
        format!("sudo {line}")
    } else {
        line
    }
}

fn quote(a: &str) -> String {
    let safe = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if safe {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

impl CmdConfig {
    fn yn(&self) -> &'static str {
        if self.backup_lvm_metadata {
            "y"
        } else {
            "n"
        }
    }

    fn lvm(&self) -> Argv {
        let mut v: Argv = self.lvm_wrapper.split_whitespace().map(String::from).collect();
        v.push("/usr/sbin/lvm".into());
        v
    }

    fn lvm_cmd(&self, rest: &[&str]) -> Argv {
        let mut v = self.lvm();
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    /// `gluster --mode=script --timeout=<t>` followed by `rest`.
    pub fn gluster(&self, rest: &[&str]) -> Argv {
        let mut v = argv(["gluster", "--mode=script"]);
        v.push(format!("--timeout={}", self.gluster_cli_timeout));
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    /// Device setup (6.2): wipefs (only when destroying data), pvcreate, vgcreate.
    pub fn device_setup(&self, dev: &str, vg: &str, wipe: bool) -> Vec<Argv> {
        let mut out = Vec::new();
        if wipe {
            out.push(argv(["wipefs", "--all", dev]));
        }
        let align = format!("--dataalignment={}", self.pv_data_alignment);
        out.push(self.lvm_cmd(&["pvcreate", "-qq", "--metadatasize=128M", &align, dev]));
        let pe = format!("--physicalextentsize={}", self.vg_physicalextentsize);
        let backup = format!("--autobackup={}", self.yn());
        out.push(self.lvm_cmd(&["vgcreate", "-qq", &pe, &backup, vg, dev]));
        out
    }

    pub fn pvs_json(&self, dev: &str) -> Argv {
        self.lvm_cmd(&["pvs", "-o", "pv_name,pv_uuid,vg_name", "--reportformat=json", dev])
    }

    pub fn vgdisplay(&self, vg: &str) -> Argv {
        self.lvm_cmd(&["vgdisplay", "-c", vg])
    }

    /// Device teardown (6.3).
    pub fn device_teardown(&self, vg: &str, pv_path: &str) -> Vec<Argv> {
        vec![
            self.lvm_cmd(&["vgremove", "-qq", vg]),
            self.lvm_cmd(&["pvremove", "-qq", pv_path]),
        ]
    }

    pub fn device_rmdir(&self, vg: &str) -> Argv {
        argv(["rmdir", &format!("/var/lib/heketi/mounts/{vg}")])
    }

    /// Brick create (6.4). `mount_dir` is the brick's mount point, `lv`/`tp` its LV names.
    #[allow(clippy::too_many_arguments)]
    pub fn brick_create(
        &self,
        vg: &str,
        tp: &str,
        lv: &str,
        mount_dir: &str,
        tp_kib: u64,
        meta_kib: u64,
        size_kib: u64,
        gid: i64,
        arbiter: bool,
    ) -> Vec<Argv> {
        let devnode = format!("/dev/mapper/{vg}-{lv}");
        let backup = format!("--autobackup={}", self.yn());
        let chunk = if arbiter {
            "256K".to_string()
        } else {
            self.lv_chunksize.clone()
        };
        let mut out = vec![
            argv(["mkdir", "-p", mount_dir]),
            self.lvm_cmd(&[
                "lvcreate",
                "-qq",
                &backup,
                "--poolmetadatasize",
                &format!("{meta_kib}K"),
                "--chunksize",
                &chunk,
                "--size",
                &format!("{tp_kib}K"),
                "--thin",
                &format!("{vg}/{tp}"),
                "--virtualsize",
                &format!("{size_kib}K"),
                "--name",
                lv,
            ]),
        ];
        let mkfs = if arbiter {
            argv(["mkfs.xfs", "-i", "maxpct=100", "-n", "size=8192", &devnode])
        } else if self.xfs_sw != 0 && self.xfs_su != 0 {
            let d = format!("su={},sw={}", self.xfs_su, self.xfs_sw);
            argv([
                "mkfs.xfs",
                "-i",
                "size=512",
                "-d",
                &d,
                "-n",
                "size=8192",
                &devnode,
            ])
        } else {
            argv(["mkfs.xfs", "-i", "size=512", "-n", "size=8192", &devnode])
        };
        out.push(mkfs);
        // awk's own `>>` appends to fstab: no shell redirection is involved. The line and the
        // file are awk's arguments (ARGV, read as they are), never part of its program.
        let entry = format!("{devnode} {mount_dir} xfs {} 1 2", self.mountopts);
        out.push(argv([
            "awk",
            "BEGIN { print ARGV[1] >> ARGV[2] }",
            &entry,
            &self.fstab,
        ]));
        out.push(argv(["mount", "-o", &self.mountopts, &devnode, mount_dir]));
        let brick = format!("{mount_dir}/brick");
        out.push(argv(["mkdir", &brick]));
        if gid != 0 {
            out.push(argv(["chown", &format!(":{gid}"), &brick]));
            out.push(argv(["chmod", "2775", &brick]));
        }
        out
    }

    /// Brick destroy steps (6.4), each run on its own; see the executor for the tolerance rules.
    pub fn umount(&self, mount_dir: &str) -> Argv {
        argv(["umount", mount_dir])
    }

    /// Whether fstab has a line for `devnode` (first field, compared as a fixed string):
    /// exit status 0 if it has.
    pub fn fstab_has(&self, devnode: &str) -> Argv {
        argv([
            "awk",
            "BEGIN { while ((getline l < ARGV[2]) > 0) { split(l, a); if (a[1] == ARGV[1]) exit 0 } exit 1 }",
            devnode,
            &self.fstab,
        ])
    }

    /// Drops the brick's fstab line: lines whose device is `devnode` or whose mount point is
    /// `mount_dir`, both compared as fixed strings (fields, not patterns: Heketi's
    /// `sed -i "/<lv>/d"` made a sed script of the LV name). awk writes the other lines to a
    /// temporary file beside fstab, which then takes fstab's mode and owner and replaces it by
    /// rename. Run under the executor's per-host fstab lock.
    pub fn fstab_remove(&self, devnode: &str, mount_dir: &str) -> Vec<Argv> {
        let tmp = format!("{}.hekate.tmp", self.fstab);
        let reference = format!("--reference={}", self.fstab);
        vec![
            argv([
                "awk",
                "BEGIN { printf \"\" > ARGV[4]; \
                 while ((r = (getline l < ARGV[3])) > 0) { split(l, a); \
                 if (a[1] != ARGV[1] && a[2] != ARGV[2]) print l > ARGV[4] } \
                 close(ARGV[4]); exit (r < 0) }",
                devnode,
                mount_dir,
                &self.fstab,
                &tmp,
            ]),
            argv(["chmod", &reference, &tmp]),
            argv(["chown", &reference, &tmp]),
            argv(["mv", "-f", &tmp, &self.fstab]),
        ]
    }

    pub fn lvremove(&self, vg: &str, lv: &str) -> Argv {
        let backup = format!("--autobackup={}", self.yn());
        self.lvm_cmd(&["lvremove", &backup, "-f", &format!("{vg}/{lv}")])
    }

    pub fn thin_count(&self, vg: &str, tp: &str) -> Argv {
        self.lvm_cmd(&[
            "lvs",
            "--noheadings",
            "--options=thin_count",
            &format!("{vg}/{tp}"),
        ])
    }

    pub fn rmdir(&self, dir: &str) -> Argv {
        argv(["rmdir", dir])
    }

    pub fn glusterd_status(&self) -> Argv {
        argv(["systemctl", "status", "glusterd"])
    }

    pub fn peer_probe(&self, host: &str) -> Vec<Argv> {
        let mut out = vec![self.gluster(&["peer", "probe", host])];
        if self.snapshot_limit > 0 {
            let l = self.snapshot_limit.to_string();
            out.push(self.gluster(&["snapshot", "config", "snap-max-hard-limit", &l]));
        }
        out
    }

    pub fn peer_detach(&self, host: &str) -> Argv {
        self.gluster(&["peer", "detach", host])
    }

    /// Volume create (6.6): the first set in `volume create`, the rest in `add-brick`s of
    /// `set × per_cmd` bricks, one `volume set` per option, `user.heketi.id`, then start.
    pub fn volume_create(&self, v: &super::VolumeSpec) -> Vec<Argv> {
        let set = set_size(v);
        let mut create: Argv = self.gluster(&["volume", "create", &v.name]);
        if let Some(r) = v.replica {
            create.extend(argv(["replica", &r.to_string()]));
            if v.arbiter {
                create.extend(argv(["arbiter", "1"]));
            }
        } else if let Some((d, r)) = v.disperse {
            create.extend(argv([
                "disperse-data",
                &d.to_string(),
                "redundancy",
                &r.to_string(),
            ]));
        }
        create.extend(v.bricks.iter().take(set).cloned());
        let mut out = vec![create];
        out.extend(self.add_bricks(v, &v.bricks[set.min(v.bricks.len())..]));
        for o in &v.options {
            let mut kv = o.splitn(2, char::is_whitespace);
            let (k, val) = (
                kv.next().unwrap_or_default(),
                kv.next().unwrap_or_default().trim(),
            );
            if !k.is_empty() {
                out.push(self.gluster(&["volume", "set", &v.name, k, val]));
            }
        }
        out.push(self.gluster(&["volume", "start", &v.name]));
        out
    }

    /// `add-brick` commands for `bricks` (set × per_cmd bricks each).
    pub fn add_bricks(&self, v: &super::VolumeSpec, bricks: &[String]) -> Vec<Argv> {
        add_brick_chunks(v, bricks)
            .into_iter()
            .map(|chunk| {
                let mut c = self.gluster(&["volume", "add-brick", &v.name]);
                c.extend(chunk.iter().cloned());
                c
            })
            .collect()
    }

    pub fn rebalance(&self, name: &str) -> Argv {
        self.gluster(&["volume", "rebalance", name, "start"])
    }

    pub fn volume_stop(&self, name: &str) -> Argv {
        self.gluster(&["volume", "stop", name, "force"])
    }

    pub fn volume_delete(&self, name: &str) -> Argv {
        self.gluster(&["volume", "delete", name])
    }

    /// Every LV with its VG and thin pool (reconcile).
    pub fn lvs_all_json(&self) -> Argv {
        self.lvm_cmd(&["lvs", "--reportformat", "json", "-o", "lv_name,vg_name,pool_lv"])
    }

    /// Every VG's name (reconcile).
    pub fn vgs_json(&self) -> Argv {
        self.lvm_cmd(&["vgs", "--reportformat", "json", "-o", "vg_name"])
    }

    pub fn peer_status_xml(&self) -> Argv {
        self.gluster(&["peer", "status", "--xml"])
    }

    pub fn heal_info_xml(&self, name: &str) -> Argv {
        self.gluster(&["volume", "heal", name, "info", "--xml"])
    }

    pub fn volume_info_all_xml(&self) -> Argv {
        self.gluster(&["volume", "info", "--xml"])
    }

    pub fn volume_info_xml(&self, name: &str) -> Argv {
        self.gluster(&["volume", "info", name, "--xml"])
    }

    pub fn replace_brick(&self, vol: &str, old: &str, new: &str) -> Argv {
        self.gluster(&["volume", "replace-brick", vol, old, new, "commit", "force"])
    }
}

/// Refuses a block-hosting volume or block volume name gluster-block would not take (and
/// that could not be Hekate's): checked before any gluster-block command line is built.
fn block_name(what: &str, n: &str) -> super::ExecResult<()> {
    if crate::validate::is_volume_name(n) {
        Ok(())
    } else {
        Err(super::ExecError::Failed(format!(
            "gluster-block: invalid {what} name {n:?}: not sent"
        )))
    }
}

/// `<bhv>/<name>`, both checked.
fn block_path(bhv: &str, name: &str) -> super::ExecResult<String> {
    block_name("block-hosting volume", bhv)?;
    block_name("block volume", name)?;
    Ok(format!("{bhv}/{name}"))
}

/// gluster-block's command lines (spec 6.8), every one with `--json`. Names and hosts are
/// checked first: a refused one builds nothing.
impl CmdConfig {
    /// `gluster-block create <bhv>/<name> ha <n> auth <enable|disable> prealloc <full|no>
    /// <host1,host2,...> <size>GiB --json`.
    pub fn block_create(&self, b: &super::BlockSpec) -> super::ExecResult<Argv> {
        let path = block_path(&b.bhv, &b.name)?;
        if let Some(h) = b.hosts.iter().find(|h| !crate::validate::is_host(h)) {
            return Err(super::ExecError::Failed(format!(
                "gluster-block: invalid host {h:?} for block volume {path}: not sent"
            )));
        }
        if b.hosts.is_empty() || b.ha == 0 || b.ha > b.hosts.len() || b.size_gib == 0 {
            return Err(super::ExecError::Failed(format!(
                "gluster-block: block volume {path} needs 1 <= ha ({}) <= hosts ({}) and a size (got {} GiB): not sent",
                b.ha,
                b.hosts.len(),
                b.size_gib
            )));
        }
        let ha = b.ha.to_string();
        let hosts = b.hosts.join(",");
        let size = format!("{}GiB", b.size_gib);
        let auth = if b.auth { "enable" } else { "disable" };
        let prealloc = if b.prealloc { "full" } else { "no" };
        Ok(argv([
            "gluster-block",
            "create",
            &path,
            "ha",
            &ha,
            "auth",
            auth,
            "prealloc",
            prealloc,
            &hosts,
            &size,
            "--json",
        ]))
    }

    /// `gluster-block delete <bhv>/<name> --json`.
    pub fn block_delete(&self, bhv: &str, name: &str) -> super::ExecResult<Argv> {
        Ok(argv([
            "gluster-block",
            "delete",
            &block_path(bhv, name)?,
            "--json",
        ]))
    }

    /// `gluster-block modify <bhv>/<name>  size <n>GiB --json` (Heketi's line has two spaces
    /// before `size`; as arguments they are one separator).
    pub fn block_modify(&self, bhv: &str, name: &str, size_gib: u64) -> super::ExecResult<Argv> {
        let path = block_path(bhv, name)?;
        if size_gib == 0 {
            return Err(super::ExecError::Failed(format!(
                "gluster-block: block volume {path} cannot be resized to 0 GiB: not sent"
            )));
        }
        Ok(argv([
            "gluster-block",
            "modify",
            &path,
            "size",
            &format!("{size_gib}GiB"),
            "--json",
        ]))
    }

    /// `gluster-block info <bhv>/<name> --json`.
    pub fn block_info(&self, bhv: &str, name: &str) -> super::ExecResult<Argv> {
        Ok(argv(["gluster-block", "info", &block_path(bhv, name)?, "--json"]))
    }

    /// `gluster-block list <bhv> --json`.
    pub fn block_list(&self, bhv: &str) -> super::ExecResult<Argv> {
        block_name("block-hosting volume", bhv)?;
        Ok(argv(["gluster-block", "list", bhv, "--json"]))
    }
}

/// How `bricks` are split into `add-brick` commands (Heketi's: 5 sets a command for
/// replicate, 1 for disperse, 15 for distribute). A sequence that stops half-way leaves the
/// first chunks in the volume; the mock executor models that with the same split.
pub fn add_brick_chunks<'a>(v: &super::VolumeSpec, bricks: &'a [String]) -> Vec<&'a [String]> {
    let per_cmd = if v.replica.is_some() {
        5
    } else if v.disperse.is_some() {
        1
    } else {
        15
    };
    bricks.chunks(set_size(v) * per_cmd).collect()
}

fn set_size(v: &super::VolumeSpec) -> usize {
    match (v.replica, v.disperse) {
        (Some(r), _) => r.max(1) as usize,
        (None, Some((d, r))) => (d + r).max(1) as usize,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{ExecError, VolumeSpec};

    fn line(a: &Argv) -> String {
        shell_line(a, false)
    }

    #[test]
    fn device_setup_is_heketis() {
        let c = CmdConfig::default();
        let cmds: Vec<String> = c
            .device_setup("/dev/vdb", "vg_abc", true)
            .iter()
            .map(line)
            .collect();
        assert_eq!(
            cmds,
            vec![
                "wipefs --all /dev/vdb",
                "/usr/sbin/lvm pvcreate -qq --metadatasize=128M --dataalignment=256K /dev/vdb",
                "/usr/sbin/lvm vgcreate -qq --physicalextentsize=4M --autobackup=n vg_abc /dev/vdb",
            ]
        );
        assert_eq!(line(&c.vgdisplay("vg_abc")), "/usr/sbin/lvm vgdisplay -c vg_abc");
    }

    #[test]
    fn brick_create_is_heketis_and_awk_keeps_its_own_redirection() {
        let c = CmdConfig::default();
        let m = "/var/lib/heketi/mounts/vg_d/brick_b";
        let cmds: Vec<String> = c
            .brick_create("vg_d", "tp_b", "brick_b", m, 2097152, 12288, 2097152, 2000, false)
            .iter()
            .map(line)
            .collect();
        assert_eq!(cmds[0], format!("mkdir -p {m}"));
        assert_eq!(
            cmds[1],
            "/usr/sbin/lvm lvcreate -qq --autobackup=n --poolmetadatasize 12288K --chunksize 256K --size 2097152K --thin vg_d/tp_b --virtualsize 2097152K --name brick_b"
        );
        assert_eq!(
            cmds[2],
            "mkfs.xfs -i size=512 -n size=8192 /dev/mapper/vg_d-brick_b"
        );
        assert_eq!(
            cmds[3],
            format!("awk 'BEGIN {{ print ARGV[1] >> ARGV[2] }}' '/dev/mapper/vg_d-brick_b {m} xfs rw,inode64,noatime,nouuid 1 2' /etc/fstab")
        );
        assert_eq!(
            cmds[4],
            format!("mount -o rw,inode64,noatime,nouuid /dev/mapper/vg_d-brick_b {m}")
        );
        assert_eq!(cmds[5], format!("mkdir {m}/brick"));
        assert_eq!(cmds[6], format!("chown :2000 {m}/brick"));
        assert_eq!(cmds[7], format!("chmod 2775 {m}/brick"));
    }

    #[test]
    fn volume_create_groups_bricks_like_heketi() {
        let c = CmdConfig::default();
        let v = VolumeSpec {
            id: "id1".into(),
            name: "vol1".into(),
            bricks: (0..9).map(|i| format!("h{i}:/b{i}")).collect(),
            replica: Some(3),
            arbiter: false,
            disperse: None,
            options: vec![
                "performance.readdir-ahead off".into(),
                "user.heketi.id id1".into(),
            ],
        };
        let cmds: Vec<String> = c.volume_create(&v).iter().map(line).collect();
        assert_eq!(
            cmds[0],
            "gluster --mode=script --timeout=600 volume create vol1 replica 3 h0:/b0 h1:/b1 h2:/b2"
        );
        assert_eq!(cmds[1], "gluster --mode=script --timeout=600 volume add-brick vol1 h3:/b3 h4:/b4 h5:/b5 h6:/b6 h7:/b7 h8:/b8");
        assert_eq!(
            cmds[2],
            "gluster --mode=script --timeout=600 volume set vol1 performance.readdir-ahead off"
        );
        assert_eq!(
            cmds[3],
            "gluster --mode=script --timeout=600 volume set vol1 user.heketi.id id1"
        );
        assert_eq!(cmds[4], "gluster --mode=script --timeout=600 volume start vol1");
    }

    /// The fstab programs run here, with awk, on a file holding a hostile line: data is
    /// compared as fixed strings, never run, and only the brick's own line goes.
    #[test]
    fn fstab_edits_are_fixed_strings() {
        let dir = tempfile::tempdir().unwrap();
        let fstab = dir.path().join("fstab");
        let keep = "/dev/mapper/vg_a-brick_keep /var/lib/heketi/mounts/vg_a/brick_keep xfs rw 1 2";
        let hostile = "/dev/mapper/vg_a-x.e /x xfs rw 1 2";
        std::fs::write(
            &fstab,
            format!("# comment\n{keep}\n{hostile}\n  UUID=1 / ext4 defaults 0 1\n"),
        )
        .unwrap();
        let c = CmdConfig {
            fstab: fstab.display().to_string(),
            ..Default::default()
        };
        let run = |argv: &[String]| {
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .status()
                .unwrap()
                .success()
        };
        let marker = dir.path().join("pwned");
        // A "device" that is a regex / sed script matches nothing and runs nothing.
        let evil = format!(".*/e touch {}", marker.display());
        assert!(!run(&c.fstab_has(&evil)));
        assert!(run(&c.fstab_has("/dev/mapper/vg_a-brick_keep")));
        for cmd in c.fstab_remove(&evil, "/nowhere") {
            assert!(run(&cmd), "{cmd:?}");
        }
        assert!(!marker.exists());
        let text = std::fs::read_to_string(&fstab).unwrap();
        assert!(
            text.contains(keep) && text.contains(hostile) && text.contains("UUID=1"),
            "{text}"
        );
        // The brick's own line goes, by device or by mount point; the others stay.
        for cmd in c.fstab_remove("/dev/mapper/vg_a-x.e", "/nowhere") {
            assert!(run(&cmd), "{cmd:?}");
        }
        let text = std::fs::read_to_string(&fstab).unwrap();
        assert_eq!(text, format!("# comment\n{keep}\n  UUID=1 / ext4 defaults 0 1\n"));
        for cmd in c.fstab_remove("/dev/other", "/var/lib/heketi/mounts/vg_a/brick_keep") {
            assert!(run(&cmd), "{cmd:?}");
        }
        assert!(!std::fs::read_to_string(&fstab).unwrap().contains(keep));
        // Appending: the line is an argument, printed as it is.
        let mut create = c.brick_create("vg_a", "tp_b", "brick_b", "/m/b", 1, 1, 1, 0, false);
        assert!(run(&create.remove(3)));
        assert!(run(&c.fstab_has("/dev/mapper/vg_a-brick_b")));
    }

    fn block(auth: bool, prealloc: bool) -> crate::executor::BlockSpec {
        crate::executor::BlockSpec {
            bhv: "vol_0123abcd".into(),
            name: "blockvol_42".into(),
            ha: 2,
            auth,
            prealloc,
            hosts: vec!["10.0.0.1".into(), "node-2.example.com".into(), "10.0.0.3".into()],
            size_gib: 5,
        }
    }

    /// Spec 6.8's lines, as argv and as the rendered line the node's shell gets.
    #[test]
    fn gluster_block_lines_are_heketis() {
        let c = CmdConfig::default();
        let create = c.block_create(&block(true, false)).unwrap();
        assert_eq!(
            create,
            [
                "gluster-block",
                "create",
                "vol_0123abcd/blockvol_42",
                "ha",
                "2",
                "auth",
                "enable",
                "prealloc",
                "no",
                "10.0.0.1,node-2.example.com,10.0.0.3",
                "5GiB",
                "--json"
            ]
        );
        assert_eq!(
            line(&create),
            "gluster-block create vol_0123abcd/blockvol_42 ha 2 auth enable prealloc no 10.0.0.1,node-2.example.com,10.0.0.3 5GiB --json"
        );
        assert_eq!(
            line(&c.block_create(&block(false, true)).unwrap()),
            "gluster-block create vol_0123abcd/blockvol_42 ha 2 auth disable prealloc full 10.0.0.1,node-2.example.com,10.0.0.3 5GiB --json"
        );
        assert_eq!(
            line(&c.block_delete("vol_a", "b-1").unwrap()),
            "gluster-block delete vol_a/b-1 --json"
        );
        // Heketi's `modify <bhv>/<name>  size <n>GiB`: the double space is only a separator.
        let modify = c.block_modify("vol_a", "b_1", 7).unwrap();
        assert_eq!(
            modify,
            ["gluster-block", "modify", "vol_a/b_1", "size", "7GiB", "--json"]
        );
        assert_eq!(line(&modify), "gluster-block modify vol_a/b_1 size 7GiB --json");
        assert_eq!(
            line(&c.block_info("vol_a", "b_1").unwrap()),
            "gluster-block info vol_a/b_1 --json"
        );
        assert_eq!(
            line(&c.block_list("vol_a").unwrap()),
            "gluster-block list vol_a --json"
        );
        // sudo, as for every command.
        assert_eq!(
            shell_line(&c.block_list("vol_a").unwrap(), true),
            "sudo gluster-block list vol_a --json"
        );
    }

    /// Names and hosts gluster-block would refuse (or a shell would read) build nothing.
    #[test]
    fn gluster_block_refuses_bad_names_and_hosts_before_building() {
        let c = CmdConfig::default();
        for (bhv, name) in [
            ("vol a", "b"),
            ("vol/a", "b"),
            ("", "b"),
            ("v", ""),
            ("v", "b;reboot"),
            ("v", "$(id)"),
            ("v", "b/c"),
            ("v", "b.c"),
        ] {
            for r in [
                c.block_delete(bhv, name),
                c.block_info(bhv, name),
                c.block_modify(bhv, name, 2),
            ] {
                let e = r.unwrap_err();
                assert!(
                    matches!(&e, ExecError::Failed(m) if m.contains("not sent")),
                    "{bhv}/{name}: {e}"
                );
            }
            let mut b = block(false, false);
            b.bhv = bhv.into();
            b.name = name.into();
            assert!(c.block_create(&b).is_err(), "{bhv}/{name}");
        }
        assert!(c.block_list("a b").is_err() && c.block_list("").is_err());
        for host in ["10.0.0.1,10.0.0.2", "a b", "-x", "h;id", ""] {
            let mut b = block(false, false);
            b.hosts[1] = host.into();
            assert!(c.block_create(&b).is_err(), "{host}");
        }
        let mut b = block(false, false);
        b.ha = 4; // more than the three hosts
        assert!(c.block_create(&b).is_err());
        b.ha = 0;
        assert!(c.block_create(&b).is_err());
        let mut b = block(false, false);
        b.size_gib = 0;
        assert!(c.block_create(&b).is_err());
        assert!(c.block_modify("v", "b", 0).is_err());
    }

    #[test]
    fn quoting_is_done_once_and_defuses_metacharacters() {
        let a = vec![
            "echo".to_string(),
            "a b".into(),
            "it's".into(),
            "$(rm -rf /)".into(),
            ";".into(),
        ];
        assert_eq!(
            shell_line(&a, true),
            r"sudo echo 'a b' 'it'\''s' '$(rm -rf /)' ';'"
        );
    }
}
