//! Parsers of what nodes print: `vgdisplay -c`, LVM's JSON reports, `lvs` thin counts and
//! `gluster ... --xml`. Each returns a typed value or an error quoting the input.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{DeviceInfo, ExecError, ExecResult};

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
