//! Block volumes in reconcile: what gluster-block lists in each of Hekate's block-hosting
//! volumes (BHVs) against the state's block volumes of that BHV. A block volume in the BHV
//! that the state does not know is an orphan (a create whose undo could not run; the BHV is
//! Hekate's, marked, so what it holds is Hekate's to remove); a block volume of the state that
//! gluster-block does not list is missing (reported, never "repaired" by forgetting it). BHVs
//! and block volumes an operation is working on are skipped, and so is a Gluster volume of a
//! BHV's name that does not carry its mark (the volume comparison reports it as foreign).

use std::collections::BTreeSet;

use super::{Expected, Finding, Kind, Observed, Repair};

/// The BHVs reconcile reads: visible, not busy block-hosting volumes.
pub fn bhvs(e: &Expected) -> impl Iterator<Item = &crate::state::model::VolumeEntry> {
    e.volumes
        .values()
        .filter(|v| v.block && !v.hidden && v.pending.is_none() && !e.busy.volumes.contains(&v.name))
}

pub(super) fn compare_blocks(e: &Expected, seen: &Observed, out: &mut Vec<Finding>) {
    for bhv in bhvs(e) {
        let Some(Ok((host, listed))) = seen.blocks.get(&bhv.id) else {
            continue;
        };
        // Only a Gluster volume that carries this BHV's mark is judged (and repaired): one of
        // that name without it is reported by the volume comparison and left alone.
        let marked = matches!(seen.volumes.get(&bhv.cluster), Some(Ok(g))
            if g.get(&bhv.name).is_some_and(|v| v.mark.as_deref() == Some(bhv.id.as_str())));
        if !marked {
            continue;
        }
        let mine: Vec<_> = e.blockvolumes.values().filter(|b| b.bhv == bhv.id).collect();
        // A block volume an operation is working on (pending) is neither orphan nor missing.
        if mine.iter().any(|b| b.pending.is_some()) {
            continue;
        }
        let known: BTreeSet<&str> = mine.iter().map(|b| b.name.as_str()).collect();
        let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        for name in listed_set.difference(&known) {
            out.push(Finding {
                kind: Kind::OrphanBlockVolume,
                place: bhv.cluster.clone(),
                object: format!("{}/{name}", bhv.name),
                detail: format!(
                    "block volume {name} in block-hosting volume {} ({}) is not in the state",
                    bhv.id, bhv.name
                ),
                repair: Some(Repair::DestroyBlockVolume {
                    host: host.clone(),
                    bhv: bhv.name.clone(),
                    bhv_id: bhv.id.clone(),
                    name: name.to_string(),
                }),
            });
        }
        for b in mine.iter().filter(|b| !listed_set.contains(b.name.as_str())) {
            out.push(Finding {
                kind: Kind::MissingBlockVolume,
                place: bhv.cluster.clone(),
                object: format!("{}/{}", bhv.name, b.name),
                detail: format!(
                    "block volume {} ({}) is not in block-hosting volume {}",
                    b.id, b.name, bhv.name
                ),
                repair: None,
            });
        }
    }
}
