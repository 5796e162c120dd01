use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn dev(id: &str, node: &str, zone: i64, free_gib: u64) -> DeviceView {
    DeviceView {
        id: id.into(),
        node: node.into(),
        zone,
        free: free_gib * GIB_KIB,
        extent: 4096,
        tags: Tags::new(),
    }
}

fn req(size_gib: u64, set_size: usize) -> Request {
    Request {
        size_gib,
        set_size,
        data_bricks: 1,
        snapshot_factor: 1.0,
        brick_min_kib: GIB_KIB,
        brick_max_kib: 4096 * GIB_KIB,
        max_bricks: 32,
        existing_bricks: 0,
        zone_strict: false,
        tag_rule: None,
        arbiter: false,
        average_file_kib: 64,
        seed: 0,
    }
}

#[test]
fn replica_three_lands_on_three_nodes() {
    let devs = vec![
        dev("a", "n1", 1, 100),
        dev("b", "n2", 2, 100),
        dev("c", "n3", 3, 100),
    ];
    let p = place(&devs, &req(10, 3)).unwrap();
    assert_eq!(p.len(), 1);
    let nodes: BTreeSet<_> = p[0].iter().map(|b| b.node.clone()).collect();
    assert_eq!(nodes.len(), 3);
}

#[test]
fn two_nodes_cannot_hold_replica_three() {
    let devs = vec![
        dev("a", "n1", 1, 100),
        dev("b", "n1", 1, 100),
        dev("c", "n2", 2, 100),
    ];
    assert_eq!(place(&devs, &req(10, 3)).unwrap_err(), AllocError::MinBrickSize);
}

#[test]
fn splits_into_more_sets_when_devices_are_small() {
    let devs: Vec<_> = (0..6)
        .map(|i| dev(&format!("d{i}"), &format!("n{}", i % 3), i % 3, 6))
        .collect();
    // 10 GiB replica 3 on 6 GiB devices: 2 sets of 5 GiB bricks.
    let p = place(&devs, &req(10, 3)).unwrap();
    assert_eq!(p.len(), 2);
    assert!(p.iter().flatten().all(|b| b.size == 5 * GIB_KIB));
}

#[test]
fn strict_zones_refuse_when_zones_are_fewer_than_the_set() {
    let devs = vec![
        dev("a", "n1", 1, 100),
        dev("b", "n2", 1, 100),
        dev("c", "n3", 2, 100),
    ];
    let mut r = req(10, 3);
    assert!(place(&devs, &r).is_ok());
    r.zone_strict = true;
    assert!(place(&devs, &r).is_err());
}

#[test]
fn tag_rules_filter_devices() {
    let mut devs = vec![
        dev("a", "n1", 1, 100),
        dev("b", "n2", 2, 100),
        dev("c", "n3", 3, 100),
        dev("d", "n4", 4, 100),
    ];
    devs[3].tags.insert("disk".into(), "hdd".into());
    let mut r = req(10, 3);
    r.tag_rule = Some(TagRule::parse("disk!=hdd").unwrap());
    let p = place(&devs, &r).unwrap();
    assert!(p[0].iter().all(|b| b.device != "d"));
    r.tag_rule = Some(TagRule::parse("disk=hdd").unwrap());
    assert!(place(&devs, &r).is_err());
    assert!(TagRule::parse("no rule").is_err());
}

#[test]
fn arbiter_brick_is_small_and_on_an_arbiter_capable_device() {
    let mut devs = vec![
        dev("a", "n1", 1, 100),
        dev("b", "n2", 2, 100),
        dev("c", "n3", 3, 2),
    ];
    devs[2].tags.insert("arbiter".into(), "required".into());
    let mut r = req(10, 3);
    r.arbiter = true;
    let p = place(&devs, &r).unwrap();
    let arb = &p[0][2];
    assert!(arb.arbiter);
    assert_eq!(arb.device, "c");
    assert_eq!(arb.size, (10 * GIB_KIB / 64).max(super::ARBITER_MIN_KIB));
}

fn topology() -> impl Strategy<Value = Vec<DeviceView>> {
    // 1-8 nodes, zones 1-4, 1-3 devices per node, 1-200 GiB free each.
    prop::collection::vec((1i64..=4, prop::collection::vec(1u64..200, 1..=3)), 1..=8).prop_map(|nodes| {
        let mut out = Vec::new();
        for (n, (zone, devs)) in nodes.into_iter().enumerate() {
            for (i, free) in devs.into_iter().enumerate() {
                out.push(dev(&format!("{n:02}{i}"), &format!("node{n:02}"), zone, free));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn placement_invariants(devs in topology(), size in 1u64..300, set_size in prop::sample::select(vec![1usize, 2, 3]),
                            strict in any::<bool>(), seed in any::<u64>()) {
        let mut r = req(size, set_size);
        r.zone_strict = strict;
        r.seed = seed;
        let first = place(&devs, &r);
        // Deterministic.
        prop_assert_eq!(&first, &place(&devs, &r));
        let zones: BTreeSet<i64> = devs.iter().map(|d| d.zone).collect();
        if strict && zones.len() < set_size {
            prop_assert!(first.is_err(), "strict zones must refuse {set_size} bricks over {} zones", zones.len());
        }
        if let Ok(sets) = first {
            let by_id: BTreeMap<&str, &DeviceView> = devs.iter().map(|d| (d.id.as_str(), d)).collect();
            let mut used: BTreeMap<&str, u64> = BTreeMap::new();
            let mut capacity = 0u64;
            for set in &sets {
                prop_assert_eq!(set.len(), set_size);
                let nodes: BTreeSet<&str> = set.iter().map(|b| b.node.as_str()).collect();
                prop_assert_eq!(nodes.len(), set_size, "two bricks of a set on one node");
                let set_zones: BTreeSet<i64> = set.iter().map(|b| by_id[b.device.as_str()].zone).collect();
                if zones.len() >= set_size {
                    // With enough zones, never two bricks of a set in one zone.
                    prop_assert_eq!(set_zones.len(), set_size, "two bricks of a set in one zone");
                }
                for b in set {
                    *used.entry(b.device.as_str()).or_default() += b.tp_size + b.meta_size;
                }
                capacity += set[0].size;
            }
            for (d, u) in used {
                prop_assert!(u < by_id[d].free, "device {} overcommitted", d);
            }
            prop_assert!(capacity >= size * GIB_KIB, "placed less than asked");
        }
    }
}
