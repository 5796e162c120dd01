//! Parsers of what nodes print: `vgdisplay -c`, LVM's JSON reports, `lvs` thin counts,
//! `gluster ... --xml` and gluster-block's `--json` answers (read as Heketi reads them, spec
//! 6.8). Each returns a typed value or an error quoting the input.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::ssh::Output;
use super::{BlockTarget, DeviceInfo, ExecError, ExecResult};

fn bad(what: &str, input: &str) -> ExecError {
    ExecError::Failed(format!(
        "unparsable {what}: {:?}",
        input.chars().take(200).collect::<String>()
    ))
}

/// `vgdisplay -c <vg>`: fields 12-15 are extent size (KiB), total, allocated, free extents.
pub fn vgdisplay(out: &str) -> ExecResult<DeviceInfo> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.matches(':').count() >= 15)
        .ok_or_else(|| bad("vgdisplay -c", out))?;
    let f: Vec<&str> = line.split(':').collect();
    let num = |i: usize| -> ExecResult<u64> {
        f.get(i)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("vgdisplay -c", out))
    };
    let (extent, total, alloc) = (num(12)?, num(13)?, num(14)?);
    Ok(DeviceInfo {
        total_kib: extent * total,
        extent_kib: extent,
        used_kib: extent * alloc,
        ..Default::default()
    })
}

/// `pvs -o pv_name,pv_uuid,vg_name --reportformat=json`: the PV UUID.
pub fn pv_uuid(out: &str) -> ExecResult<String> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|_| bad("pvs json", out))?;
    v["report"][0]["pv"][0]["pv_uuid"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| bad("pvs json", out))
}

/// `lvs --noheadings --options=thin_count vg/tp`.
pub fn thin_count(out: &str) -> ExecResult<u64> {
    out.trim().parse().map_err(|_| bad("lvs thin_count", out))
}

/// From `gluster volume info <v> --xml`: `opRet`, `opErrstr`, and the bricks in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolInfo {
    pub op_ret: i64,
    pub op_errstr: String,
    pub bricks: Vec<String>,
    pub status: String,
    /// The value of its `user.heketi.id` option (Hekate's ownership mark), if set.
    pub mark: Option<String>,
}

/// Collects `user.heketi.id` from a volume's `<options>`: the option's `<name>` comes
/// before its `<value>`.
#[derive(Default)]
struct MarkReader {
    in_mark: bool,
}

impl MarkReader {
    fn see(&mut self, here: &[&str], text: &str, mark: &mut Option<String>) {
        match here {
            [.., "volume", "options", "option", "name"] => {
                self.in_mark = text == super::OWNER_OPTION;
            }
            [.., "volume", "options", "option", "value"] if self.in_mark => {
                *mark = Some(text.to_string());
                self.in_mark = false;
            }
            _ => {}
        }
    }
}

pub fn volume_info(xml: &str) -> ExecResult<VolInfo> {
    let mut info = VolInfo::default();
    let mut marks = MarkReader::default();
    let ret = walk_xml(xml, |here, text| match here {
        [.., "cliOutput", "opErrstr"] => info.op_errstr = text.to_string(),
        [.., "volume", "statusStr"] => info.status = text.to_string(),
        [.., "bricks", "brick", "name"] => info.bricks.push(text.to_string()),
        _ => marks.see(here, text, &mut info.mark),
    })?;
    info.op_ret = ret;
    Ok(info)
}

/// `lvs --reportformat json -o lv_name,vg_name,pool_lv`: (vg, lv, pool) rows.
pub fn lvs_all(out: &str) -> ExecResult<Vec<(String, String, String)>> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|_| bad("lvs json", out))?;
    let rows = v["report"][0]["lv"]
        .as_array()
        .ok_or_else(|| bad("lvs json", out))?;
    rows.iter()
        .map(|r| {
            let f = |k: &str| {
                r[k].as_str()
                    .map(String::from)
                    .ok_or_else(|| bad("lvs json", out))
            };
            Ok((f("vg_name")?, f("lv_name")?, f("pool_lv")?))
        })
        .collect()
}

/// `vgs --reportformat json -o vg_name`.
pub fn vg_names(out: &str) -> ExecResult<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|_| bad("vgs json", out))?;
    let rows = v["report"][0]["vg"]
        .as_array()
        .ok_or_else(|| bad("vgs json", out))?;
    rows.iter()
        .map(|r| {
            r["vg_name"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| bad("vgs json", out))
        })
        .collect()
}

/// Mount points (second field) of `/proc/mounts` or an fstab; comments and blank lines
/// skipped, octal escapes (`\040` for a space) decoded.
pub fn mount_points(table: &str) -> Vec<String> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape_octal)
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `gluster peer status --xml`: each peer's primary hostname.
pub fn peers(xml: &str) -> ExecResult<Vec<String>> {
    let mut out = Vec::new();
    let info = walk_xml(xml, |here, text| {
        if let [.., "peer", "hostname"] = here {
            out.push(text.to_string());
        }
    })?;
    if info != 0 {
        return Err(bad("gluster peer status", xml));
    }
    Ok(out)
}

/// `gluster volume info --xml` for every volume: (name, bricks in order and mark).
pub fn volumes_all(xml: &str) -> ExecResult<Vec<(String, super::GlusterVolume)>> {
    let mut out: Vec<(String, super::GlusterVolume)> = Vec::new();
    let mut marks = MarkReader::default();
    let ret = walk_xml(xml, |here, text| match here {
        [.., "volumes", "volume", "name"] => out.push((text.to_string(), Default::default())),
        [.., "volume", "bricks", "brick", "name"] => {
            if let Some(last) = out.last_mut() {
                last.1.bricks.push(text.to_string());
            }
        }
        _ => {
            if let Some(last) = out.last_mut() {
                marks.see(here, text, &mut last.1.mark);
            }
        }
    })?;
    // "No volumes present" is opRet 0 with an empty list.
    if ret != 0 {
        return Err(bad("gluster volume info", xml));
    }
    Ok(out)
}

/// `gluster volume heal <vol> info --xml`: every brick with its status and pending entries.
pub fn heal_info(xml: &str) -> ExecResult<Vec<super::HealBrick>> {
    let mut out: Vec<super::HealBrick> = Vec::new();
    let ret = walk_xml(xml, |here, text| match here {
        [.., "healInfo", "bricks", "brick", "name"] => out.push(super::HealBrick {
            name: text.to_string(),
            ..Default::default()
        }),
        [.., "healInfo", "bricks", "brick", "status"] => {
            if let Some(b) = out.last_mut() {
                b.connected = text == "Connected";
            }
        }
        [.., "healInfo", "bricks", "brick", "numberOfEntries"] => {
            if let Some(b) = out.last_mut() {
                b.entries = text.to_string();
            }
        }
        _ => {}
    })?;
    if ret != 0 {
        return Err(bad("gluster volume heal info", xml));
    }
    Ok(out)
}

/// The prefix gluster-block's IQNs carry; `info` gives only the GBID after it.
pub const BLOCK_IQN_PREFIX: &str = "iqn.2016-12.org.gluster-block:";

/// Which stream holds gluster-block's JSON: stdout, or stderr when stdout is empty (the CLI
/// prints failures on stderr); `stderr_first` (delete, as Heketi reads it) the other way round.
fn block_text(o: &Output, stderr_first: bool) -> &str {
    let (first, second) = if stderr_first {
        (&o.stderr, &o.stdout)
    } else {
        (&o.stdout, &o.stderr)
    };
    if first.trim().is_empty() {
        second.trim()
    } else {
        first.trim()
    }
}

/// `text` with the value of every `"PASSWORD"` key replaced, for error messages that quote
/// an answer which may carry credentials (an auth-enabled create or info).
pub fn redact_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\"PASSWORD\"") {
        let (head, tail) = rest.split_at(i + "\"PASSWORD\"".len());
        out.push_str(head);
        // `: "value"`: keep the separator, drop the value up to its closing quote.
        let Some(open) = tail.find('"') else {
            rest = tail;
            break;
        };
        out.push_str(&tail[..=open]);
        let value = &tail[open + 1..];
        let mut end = None;
        let mut escaped = false;
        for (j, c) in value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        out.push_str("<redacted>");
        match end {
            Some(j) => rest = &value[j..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The keys of gluster-block's answers Hekate reads, all optional (a failure carries only
/// `RESULT`, `errCode`, `errMsg`; `info`'s success has no `RESULT`).
#[derive(Debug, Default, serde::Deserialize)]
struct BlockJson {
    #[serde(rename = "RESULT", default)]
    result: String,
    #[serde(rename = "errMsg", default)]
    err_msg: String,
    #[serde(rename = "IQN", default)]
    iqn: String,
    #[serde(rename = "USERNAME", default)]
    username: String,
    #[serde(rename = "PASSWORD", default)]
    password: String,
    #[serde(rename = "PORTAL(S)", default)]
    portals: Vec<String>,
    #[serde(rename = "GBID", default)]
    gbid: String,
    #[serde(rename = "SIZE", default)]
    size: String,
    #[serde(rename = "EXPORTED ON", default)]
    exported_on: Vec<String>,
    #[serde(rename = "RESIZE FAILED ON", default)]
    resize_failed_on: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    blocks: Vec<String>,
}

impl BlockJson {
    fn failed(&self) -> bool {
        self.result == "FAIL"
    }
    fn msg(&self) -> &str {
        self.err_msg.trim_end()
    }
}

fn block_json(text: &str) -> Option<BlockJson> {
    serde_json::from_str(text).ok()
}

/// A portal (`host:3260`, `[v6]:3260`) as the host it names.
fn portal_host(p: &str) -> String {
    let host = match p.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => p,
    };
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

/// `gluster-block create ... --json` (Heketi's reading): `RESULT` FAIL is `Failed to create
/// block volume: <errMsg>` (the whole answer when it has no errMsg, as after a rollback), an
/// answer that is not JSON is `Unparsable error during block volume create: <output>`, and a
/// non-zero exit without FAIL fails with the command's error text. The target's hosts are the
/// portals' hosts (the requested `hosts` when it names none); its size is the requested one.
pub fn block_create(o: &Output, hosts: &[String], size_gib: u64) -> ExecResult<BlockTarget> {
    let text = block_text(o, false);
    let Some(j) = block_json(text) else {
        return Err(ExecError::Failed(format!(
            "Unparsable error during block volume create: {}",
            redact_password(text)
        )));
    };
    if j.failed() {
        let why = if j.msg().is_empty() {
            redact_password(text)
        } else {
            j.msg().to_string()
        };
        return Err(ExecError::Failed(format!("Failed to create block volume: {why}")));
    }
    if !o.ok() {
        return Err(ExecError::Failed(format!(
            "Failed to create block volume: {}",
            redact_password(&o.error_text())
        )));
    }
    if !j.iqn.starts_with(BLOCK_IQN_PREFIX) {
        return Err(ExecError::Failed(format!(
            "Unparsable error during block volume create: {}",
            redact_password(text)
        )));
    }
    let portals: Vec<String> = j.portals.iter().map(|p| portal_host(p)).collect();
    Ok(BlockTarget {
        iqn: j.iqn,
        username: j.username,
        password: j.password,
        hosts: if portals.is_empty() {
            hosts.to_vec()
        } else {
            portals
        },
        size_gib,
        usable_gib: size_gib,
    })
}

/// Whether `msg` names `name` as a whole name (not inside a longer one: `blk` is not named
/// by `vol/blk9 doesn't exist`). Heketi looks for the bare substring; a block volume taken
/// for gone when it is not would be forgotten while it holds data.
fn names(msg: &str, name: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    !name.is_empty()
        && msg.match_indices(name).any(|(i, _)| {
            !msg[..i].chars().next_back().is_some_and(part)
                && !msg[i + name.len()..].chars().next().is_some_and(part)
        })
}

/// `gluster-block delete ... --json` (stderr read first, as Heketi does): done, or already
/// gone (`doesn't exist` naming the block volume, `does not exist` naming the BHV, each as a
/// whole name).
pub fn block_delete(o: &Output, bhv: &str, name: &str) -> ExecResult<()> {
    let text = block_text(o, true);
    if text.is_empty() {
        return if o.ok() {
            Ok(())
        } else {
            Err(ExecError::Failed(format!(
                "Unable to delete block volume {bhv}/{name}: exit status {:?} and no output",
                o.status
            )))
        };
    }
    let Some(j) = block_json(text) else {
        return Err(ExecError::Failed(format!(
            "Unable to parse output from block volume delete: {text}"
        )));
    };
    if j.failed() {
        let msg = &j.err_msg;
        if (msg.contains("doesn't exist") && names(msg, name))
            || (msg.contains("does not exist") && names(msg, bhv))
        {
            return Ok(());
        }
        let why = if j.msg().is_empty() { text } else { j.msg() };
        return Err(ExecError::Failed(why.to_string()));
    }
    if !o.ok() {
        return Err(ExecError::Failed(o.error_text()));
    }
    Ok(())
}

/// `gluster-block modify ... size ... --json` (Heketi's messages). A request for the size the
/// block volume already has everywhere (`is same as current size`: gluster-block refuses it
/// only when no host's resize failed) is a re-run of a resize that completed: done.
pub fn block_modify(o: &Output) -> ExecResult<()> {
    let text = block_text(o, false);
    let Some(j) = block_json(text) else {
        return Err(ExecError::Failed(format!(
            "Unparsable error during block volume expand: {text}"
        )));
    };
    if j.failed() {
        if j.err_msg.contains("is same as current size") {
            return Ok(());
        }
        return Err(ExecError::Failed(if j.msg().is_empty() {
            "Failed to expand block volume (see logs for details, and retry the operation)".into()
        } else {
            format!(
                "Failed to expand block volume: {} (see logs for details, and retry the operation)",
                j.msg()
            )
        }));
    }
    if !o.ok() {
        return Err(ExecError::Failed(format!(
            "Failed to expand block volume: {}",
            o.error_text()
        )));
    }
    Ok(())
}

/// A gluster-block size (`2.0 GiB`, `1 T`, ...) in GiB, as Heketi's `toGigaBytes`: spaces
/// dropped, G/GB/GIB, T.., P.., E.. (powers of 1024), fractions of a GiB cut off.
pub fn block_size_gib(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|c| *c != ' ').collect::<String>().to_uppercase();
    let i = s.find(|c: char| c.is_alphabetic())?;
    let (num, unit) = s.split_at(i);
    let n: f64 = num.parse().ok()?;
    if n.is_nan() || n < 0.0 {
        return None;
    }
    let mult = match unit {
        "G" | "GB" | "GIB" => 1.0,
        "T" | "TB" | "TIB" => 1024.0,
        "P" | "PB" | "PIB" => 1024.0 * 1024.0,
        "E" | "EB" | "EIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// `gluster-block info <bhv>/<name> --json`: the target (IQN rebuilt from the GBID, the GBID
/// as user name when a password is set, the exporting hosts, the size and the usable size:
/// the smallest size a host whose resize failed still has), or None when gluster-block says
/// the block volume does not exist. The answer may carry the password: error messages never
/// quote it.
pub fn block_info(o: &Output, bhv: &str, name: &str) -> ExecResult<Option<BlockTarget>> {
    let text = block_text(o, false);
    let unparsable = || {
        ExecError::Failed(format!(
            "Unparsable error during block volume info: {}",
            redact_password(text)
        ))
    };
    let j = block_json(text).ok_or_else(unparsable)?;
    if j.failed() {
        if j.err_msg.contains("doesn't exist") && names(&j.err_msg, name) {
            return Ok(None);
        }
        return Err(ExecError::Failed(format!(
            "unable to get info of blockvolume {name} on block hosting volume {bhv} : {}",
            j.msg()
        )));
    }
    if !o.ok() {
        return Err(ExecError::Failed(format!(
            "unable to get info of blockvolume {name} on block hosting volume {bhv} : {}",
            redact_password(&o.error_text())
        )));
    }
    if j.gbid.is_empty() {
        return Err(unparsable());
    }
    let size_gib = block_size_gib(&j.size).ok_or_else(|| {
        ExecError::Failed(format!(
            "Not a valid Size: {:?} (block volume {bhv}/{name})",
            j.size
        ))
    })?;
    let mut usable_gib = size_gib;
    if !j.resize_failed_on.is_empty() {
        let mut min = u64::MAX;
        for v in j.resize_failed_on.values() {
            let g = block_size_gib(v).ok_or_else(|| {
                ExecError::Failed(format!(
                    "Error calculating usable size: Not a valid Size: {v:?} (block volume {bhv}/{name})"
                ))
            })?;
            min = min.min(g);
        }
        usable_gib = min;
    }
    Ok(Some(BlockTarget {
        iqn: format!("{BLOCK_IQN_PREFIX}{}", j.gbid),
        username: if j.password.is_empty() {
            String::new()
        } else {
            j.gbid.clone()
        },
        password: j.password,
        hosts: j.exported_on,
        size_gib,
        usable_gib,
    }))
}

/// `gluster-block list <bhv> --json`: the block volumes' names (`blocks`, absent or empty
/// when there are none).
pub fn block_list(o: &Output, bhv: &str) -> ExecResult<Vec<String>> {
    let text = block_text(o, false);
    let j = block_json(text).ok_or_else(|| {
        ExecError::Failed(format!(
            "Unable to get the block volume list for block hosting volume {bhv} : {text}"
        ))
    })?;
    if j.failed() || !o.ok() {
        let why = if j.msg().is_empty() {
            o.error_text()
        } else {
            j.msg().to_string()
        };
        return Err(ExecError::Failed(format!(
            "unable to list blockvolumes on block hosting volume {bhv} : {why}"
        )));
    }
    Ok(j.blocks)
}

/// Calls `f(path, text)` for every text node; returns `opRet`.
fn walk_xml(xml: &str, mut f: impl FnMut(&[&str], &str)) -> ExecResult<i64> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut ret = -1;
    loop {
        match r.read_event().map_err(|_| bad("gluster xml", xml))? {
            Event::Start(e) => path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|_| bad("gluster xml", xml))?.into_owned();
                let here = path.iter().map(String::as_str).collect::<Vec<_>>();
                if let [.., "cliOutput", "opRet"] = here.as_slice() {
                    ret = text.trim().parse().unwrap_or(-1);
                }
                f(&here, &text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/nodes/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Outputs captured from the testbed (glusterd 10.3, lvm2 with the thin-LV shim).
    #[test]
    fn golden_outputs_from_real_nodes() {
        assert_eq!(peers(&fixture("peer-status.xml")).unwrap(), vec!["10.78.0.12"]);
        let vols = volumes_all(&fixture("volume-info-all.xml")).unwrap();
        assert_eq!(
            vols,
            vec![(
                "goldvol".to_string(),
                crate::executor::GlusterVolume {
                    bricks: vec!["10.78.0.11:/var/lib/heketi/mounts/vg_gold/brick_gold/brick".to_string()],
                    // Made by hand on the testbed: no `user.heketi.id`, not Hekate's.
                    mark: None,
                }
            )]
        );
        let lvs = lvs_all(&fixture("lvs-all.json")).unwrap();
        assert_eq!(
            lvs,
            vec![
                ("vg_gold".into(), "brick_gold".into(), "tp_gold".into()),
                ("vg_gold".into(), "tp_gold".into(), String::new())
            ]
        );
        assert_eq!(vg_names(&fixture("vgs.json")).unwrap(), vec!["vg_gold"]);
        let heal = heal_info(&fixture("heal-info.xml")).unwrap();
        assert_eq!(heal.len(), 3);
        assert!(heal.iter().all(|b| b.connected && b.entries == "0"), "{heal:?}");
        // A node powered off: Gluster 10 still names its brick, not connected.
        let heal = heal_info(&fixture("heal-info-node-down.xml")).unwrap();
        assert_eq!(heal[2].name, "10.78.0.13:/var/lib/heketi/t3/b");
        assert!(!heal[2].connected && heal[2].entries == "-");
        assert!(heal[0].connected && heal[1].connected);
        let mounts = mount_points(&fixture("proc-mounts.txt"));
        assert!(mounts.contains(&"/var/lib/heketi/mounts/vg_gold/brick_gold".to_string()));
        let fstab = mount_points(&fixture("fstab.txt"));
        assert_eq!(fstab, vec!["/var/lib/heketi/mounts/vg_gold/brick_gold"]);
        assert_eq!(mount_points("a /x\\040y xfs 0 0"), vec!["/x y"]);
        let none = r#"<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/><volInfo><volumes><count>0</count></volumes></volInfo></cliOutput>"#;
        assert!(volumes_all(none).unwrap().is_empty());
        assert!(volumes_all("<cliOutput><opRet>-1</opRet></cliOutput>").is_err());
        assert!(lvs_all("nonsense").is_err());
    }

    /// gluster-block's answer `file` (testdata/gluster-block) as the CLI gives it: a success on
    /// stdout with exit 0, a failure (`"RESULT": "FAIL"`) on stderr with exit status errCode.
    fn gb(file: &str) -> Output {
        let text = std::fs::read_to_string(format!(
            "{}/src/executor/testdata/gluster-block/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["RESULT"] == "FAIL" {
            Output {
                stdout: String::new(),
                stderr: text,
                status: Some(v["errCode"].as_u64().unwrap_or(255) as u32),
            }
        } else {
            Output {
                stdout: text,
                stderr: String::new(),
                status: Some(0),
            }
        }
    }

    const GBID: &str = "6b1a5f2e-2c4d-4e61-9a3b-0f7d8c9e1a2b";
    const PASSWORD: &str = "d2f0c6a4-91b7-4c3e-8e5f-7a6b5c4d3e2f";

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.78.0.1{i}")).collect()
    }

    #[test]
    fn gluster_block_create_answers() {
        let t = block_create(&gb("create.json"), &hosts(3), 5).unwrap();
        assert_eq!(
            t,
            BlockTarget {
                iqn: format!("iqn.2016-12.org.gluster-block:{GBID}"),
                username: String::new(),
                password: String::new(),
                hosts: hosts(3),
                size_gib: 5,
                usable_gib: 5,
            }
        );
        let t = block_create(&gb("create-auth.json"), &hosts(3), 1).unwrap();
        assert_eq!((t.username.as_str(), t.password.as_str()), (GBID, PASSWORD));
        assert_eq!(t.hosts, hosts(2), "the portals' hosts, not the requested ones");
        let err = |f: &str| block_create(&gb(f), &hosts(3), 1).unwrap_err().to_string();
        assert_eq!(
            err("create-fail-exists.json"),
            "Failed to create block volume: BLOCK with name: 'blk1' already EXIST"
        );
        assert_eq!(
            err("create-fail-no-volume.json"),
            "Failed to create block volume: Volume vol_gone does not exist"
        );
        assert_eq!(
            err("create-fail-ha.json"),
            "Failed to create block volume: multipath req: 4 > block-hosts: 10.78.0.11,10.78.0.12,10.78.0.13"
        );
        // FAIL without errMsg (targets rolled back): the answer itself says what happened.
        let e = err("create-fail-rollback.json");
        assert!(
            e.starts_with("Failed to create block volume: { \"IQN\"") && e.contains("ROLLBACK SUCCESS ON"),
            "{e}"
        );
        // Not JSON: Heketi's message, quoting the output, never a password.
        let garbage = Output {
            stdout: format!("{{ \"IQN\": \"x\", \"PASSWORD\": \"{PASSWORD}\", oops"),
            stderr: String::new(),
            status: Some(0),
        };
        let e = block_create(&garbage, &hosts(1), 1).unwrap_err().to_string();
        assert!(
            e.starts_with("Unparsable error during block volume create: "),
            "{e}"
        );
        assert!(!e.contains(PASSWORD) && e.contains("<redacted>"), "{e}");
        let daemon_down = Output {
            stdout: String::new(),
            stderr: "Did not receive any response from gluster-block daemon. Please check log files to find the reason\n".into(),
            status: Some(255),
        };
        assert!(block_create(&daemon_down, &hosts(1), 1)
            .unwrap_err()
            .to_string()
            .starts_with("Unparsable error during block volume create: Did not receive"));
        // Exit status non-zero without FAIL in the answer.
        let mut odd = gb("create.json");
        odd.status = Some(1);
        odd.stderr = "something broke".into();
        assert_eq!(
            block_create(&odd, &hosts(1), 1).unwrap_err().to_string(),
            "Failed to create block volume: something broke"
        );
    }

    #[test]
    fn gluster_block_delete_answers() {
        assert_eq!(block_delete(&gb("delete.json"), "vol_x", "blk1"), Ok(()));
        // Already gone: the block volume, or its block-hosting volume.
        assert_eq!(block_delete(&gb("delete-no-block.json"), "vol_x", "blk9"), Ok(()));
        assert_eq!(
            block_delete(&gb("delete-no-volume.json"), "vol_gone", "blk9"),
            Ok(())
        );
        // "doesn't exist" about another block volume (or BHV) is not this one's absence, not
        // even when its name is part of the other's.
        assert!(block_delete(&gb("delete-no-block.json"), "vol_x", "blk1").is_err());
        assert!(block_delete(&gb("delete-no-block.json"), "vol_x", "blk").is_err());
        assert!(block_delete(&gb("delete-no-volume.json"), "vol_x", "blk9").is_err());
        assert!(block_delete(&gb("delete-no-volume.json"), "vol_go", "blk9").is_err());
        assert!(names("block v/b-1 doesn't exist", "b-1") && !names("block v/b-10 doesn't", "b-1"));
        let mut partial = gb("delete-fail-partial.json");
        partial.status = Some(255);
        let e = block_delete(&partial, "vol_x", "blk1").unwrap_err().to_string();
        assert!(e.contains("FAILED ON"), "{e}");
        let e = block_delete(
            &Output {
                stdout: String::new(),
                stderr: "not json".into(),
                status: Some(1),
            },
            "v",
            "b",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unable to parse output from block volume delete: not json"
        );
    }

    #[test]
    fn gluster_block_modify_answers() {
        assert_eq!(block_modify(&gb("modify.json")), Ok(()));
        assert_eq!(block_modify(&gb("modify-same-size.json")), Ok(()));
        assert_eq!(
            block_modify(&gb("modify-fail-partial.json")).unwrap_err().to_string(),
            "Failed to expand block volume: block volume resize failed: 10.78.0.13:[1.0 GiB] (see logs for details, and retry the operation)"
        );
        let no_msg = Output {
            stdout: String::new(),
            stderr: r#"{ "IQN": "x", "FAILED ON": [ "h3" ], "RESULT": "FAIL" }"#.into(),
            status: Some(255),
        };
        assert_eq!(
            block_modify(&no_msg).unwrap_err().to_string(),
            "Failed to expand block volume (see logs for details, and retry the operation)"
        );
        let e = block_modify(&Output {
            stdout: "garbage".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unparsable error during block volume expand: garbage"
        );
    }

    #[test]
    fn gluster_block_info_answers() {
        let t = block_info(&gb("info.json"), "vol_x", "blk1").unwrap().unwrap();
        assert_eq!(
            t,
            BlockTarget {
                iqn: format!("iqn.2016-12.org.gluster-block:{GBID}"),
                username: String::new(),
                password: String::new(),
                hosts: hosts(3),
                size_gib: 1,
                usable_gib: 1,
            }
        );
        let t = block_info(&gb("info-auth.json"), "vol_x", "blk2")
            .unwrap()
            .unwrap();
        assert_eq!((t.username.as_str(), t.password.as_str()), (GBID, PASSWORD));
        assert_eq!((t.size_gib, t.usable_gib, t.hosts.len()), (5, 5, 2));
        // A resize that failed on two hosts: usable is the smallest size they still have.
        let t = block_info(&gb("info-resize-failed.json"), "vol_x", "blk1")
            .unwrap()
            .unwrap();
        assert_eq!((t.size_gib, t.usable_gib), (4, 2));
        assert_eq!(block_info(&gb("info-no-block.json"), "vol_x", "blk9"), Ok(None));
        assert!(block_info(&gb("info-no-block.json"), "vol_x", "blk").is_err());
        let e = block_info(&gb("info-fail-stopped.json"), "vol_x", "blk1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to get info of blockvolume blk1 on block hosting volume vol_x : Check if volume vol_x is operational"
        );
        // An unparsable answer is quoted without its password.
        let bad = Output {
            stdout: format!(r#"{{ "NAME": "b", "PASSWORD": "{PASSWORD}", "SIZE": 3 }}"#),
            stderr: String::new(),
            status: Some(0),
        };
        let e = block_info(&bad, "v", "b").unwrap_err().to_string();
        assert!(
            e.starts_with("Unparsable error during block volume info: ") && !e.contains(PASSWORD),
            "{e}"
        );
    }

    #[test]
    fn gluster_block_sizes_as_heketi_reads_them() {
        for (s, g) in [
            ("2.0 GiB", Some(2)),
            ("1.5 GiB", Some(1)),
            ("1 G", Some(1)),
            ("10GB", Some(10)),
            ("1.0 TiB", Some(1024)),
            ("2 t", Some(2048)),
            ("1.0 PiB", Some(1 << 20)),
            ("1 EiB", Some(1 << 30)),
            ("512.0 MiB", None),
            ("1024", None),
            ("-1 GiB", None),
            ("", None),
        ] {
            assert_eq!(block_size_gib(s), g, "{s}");
        }
    }

    #[test]
    fn gluster_block_list_answers() {
        assert_eq!(
            block_list(&gb("list.json"), "vol_x").unwrap(),
            vec!["blk1", "blk2"]
        );
        assert!(block_list(&gb("list-empty.json"), "vol_x").unwrap().is_empty());
        let bare = Output {
            stdout: r#"{"RESULT":"SUCCESS"}"#.into(),
            stderr: String::new(),
            status: Some(0),
        };
        assert!(block_list(&bare, "vol_x").unwrap().is_empty());
        assert_eq!(
            block_list(&gb("list-fail.json"), "vol_gone")
                .unwrap_err()
                .to_string(),
            "unable to list blockvolumes on block hosting volume vol_gone : Volume vol_gone does not exist"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password(r#"{ "USERNAME": "u", "PASSWORD": "s\"ecret", "X": 1 }"#),
            r#"{ "USERNAME": "u", "PASSWORD": "<redacted>", "X": 1 }"#
        );
        assert_eq!(
            redact_password(r#""PASSWORD": "cut"#),
            r#""PASSWORD": "<redacted>"#
        );
        assert_eq!(redact_password("no secrets"), "no secrets");
    }

    #[test]
    fn vgdisplay_colon_format() {
        // A 2 GiB VG with 4 MiB extents: 511 extents, 258 allocated, 253 free.
        let out = "  vg_abc:r/w:772:-1:0:1:1:-1:0:1:1:2093056:4096:511:258:253:xyz\n";
        let d = vgdisplay(out).unwrap();
        assert_eq!(
            (d.extent_kib, d.total_kib, d.used_kib),
            (4096, 511 * 4096, 258 * 4096)
        );
        assert!(vgdisplay("  Volume group \"vg_x\" not found").is_err());
    }

    #[test]
    fn pvs_and_lvs() {
        let pvs = r#"{"report":[{"pv":[{"pv_name":"/dev/loop3","pv_uuid":"Xy12-ab","vg_name":"vg_abc"}]}]}"#;
        assert_eq!(pv_uuid(pvs).unwrap(), "Xy12-ab");
        assert_eq!(thin_count("    1\n").unwrap(), 1);
        assert!(thin_count("garbage").is_err());
    }

    #[test]
    fn gluster_volume_info_xml() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/><volInfo><volumes><volume>
<name>vol1</name><id>abc</id><status>1</status><statusStr>Started</statusStr>
<bricks><brick uuid="u1">10.0.0.1:/b/1<name>10.0.0.1:/b/1</name><hostUuid>u1</hostUuid><isArbiter>0</isArbiter></brick>
<brick uuid="u2">10.0.0.2:/b/2<name>10.0.0.2:/b/2</name><hostUuid>u2</hostUuid><isArbiter>0</isArbiter></brick></bricks>
<optCount>2</optCount><options><option><name>nfs.disable</name><value>on</value></option>
<option><name>user.heketi.id</name><value>0123456789abcdef0123456789abcdef</value></option></options>
</volume><count>1</count></volumes></volInfo></cliOutput>"#;
        let v = volume_info(xml).unwrap();
        assert_eq!(v.mark.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(volumes_all(xml).unwrap()[0].1.mark, v.mark);
        assert_eq!(v.op_ret, 0);
        assert_eq!(v.status, "Started");
        assert_eq!(v.bricks, vec!["10.0.0.1:/b/1", "10.0.0.2:/b/2"]);
        let err = volume_info("<cliOutput><opRet>-1</opRet><opErrno>30800</opErrno><opErrstr>Volume vol9 does not exist</opErrstr></cliOutput>").unwrap();
        assert_eq!(
            (err.op_ret, err.op_errstr.as_str()),
            (-1, "Volume vol9 does not exist")
        );
    }
}
