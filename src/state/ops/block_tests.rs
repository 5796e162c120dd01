//! The block kinds' effects on the state (`block_create`, `block_delete`, `block_expand`)
//! through the real `apply`: a world with a 10 GiB block-hosting volume (BHV) holding 9 GiB
//! free; every refusal in Heketi's words and writing nothing; every failure giving back
//! exactly what its begin took.

use std::collections::BTreeMap;

use super::super::command::Command;
use super::super::model::{BlockExport, BlockVolumeEntry, OpKind, OpPlan, VolumeEntry};
use super::super::{get_blockvolume, get_cluster, get_volume, Outcome};
use super::testing::{brick, finish, id, op, view, volume, world, Sm};
use super::IN_USE;

/// The world plus BHV 20 ("bhv", 10 GiB, 9 free, 1 reserved) on brick 21.
async fn fresh() -> (tempfile::TempDir, Sm) {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = world(dir.path()).await;
    let bhv = VolumeEntry {
        size: 10,
        block: true,
        block_free: 9,
        block_reserved: 1,
        ..volume(20, "bhv", 1)
    };
    let plan = OpPlan::VolumeCreate {
        volume: bhv,
        bricks: vec![brick(21, &id(20))],
    };
    assert_eq!(sm.apply(op(110, OpKind::VolumeCreate, plan)).await, Outcome::Done);
    assert_eq!(sm.apply(finish(110)).await, Outcome::Done);
    (dir, sm)
}

fn block(n: u32, name: &str, size: u64) -> BlockVolumeEntry {
    BlockVolumeEntry {
        id: id(n),
        name: name.into(),
        cluster: id(1),
        bhv: id(20),
        size,
        usable_size: size,
        hacount: 0,
        auth: false,
        hosts: vec![],
        iqn: String::new(),
        username: String::new(),
        password: String::new(),
        pending: None,
        hidden: false,
    }
}

fn create(b: BlockVolumeEntry) -> OpPlan {
    OpPlan::BlockVolumeCreate {
        block: Box::new(b),
        new_bhv: None,
        bricks: vec![],
        prealloc: true,
    }
}

fn begin(n: u32, plan: OpPlan) -> Command {
    let kind = match &plan {
        OpPlan::BlockVolumeCreate { .. } => OpKind::BlockVolumeCreate,
        OpPlan::BlockVolumeDelete { .. } => OpKind::BlockVolumeDelete,
        OpPlan::BlockVolumeExpand { .. } => OpKind::BlockVolumeExpand,
        OpPlan::VolumeDelete { .. } => OpKind::VolumeDelete,
        _ => OpKind::Cleanup,
    };
    op(n, kind, plan)
}

fn finish_block(n: u32) -> Command {
    Command::OpFinishBlock {
        id: id(n),
        export: BlockExport {
            hosts: vec!["n1.storage".into()],
            iqn: "iqn.2016-12.org.gluster-block:g".into(),
            username: String::new(),
            password: String::new(),
            usable_size: 2,
        },
        now: 3,
    }
}

fn fail(n: u32) -> Command {
    Command::OpFail {
        id: id(n),
        error: "gluster-block failed".into(),
        now: 3,
    }
}

/// Every record except the operation queue.
fn records(sm: &Sm) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use hekate_raft::StateReader;
    let skip = |k: &[u8]| k.starts_with(b"o/") || k.starts_with(b"od/") || k.starts_with(b"meta/pending_ops");
    view(sm)
        .scan_prefix(b"")
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !skip(k))
        .collect()
}

fn bhv_free(sm: &Sm) -> u64 {
    get_volume(&view(sm), &id(20)).unwrap().unwrap().block_free
}

/// A world holding block volume 30 ("lun", 2 GiB), created and finished: 7 GiB free.
async fn with_block() -> (tempfile::TempDir, Sm) {
    let (d, mut sm) = fresh().await;
    assert_eq!(
        sm.apply(begin(120, create(block(30, "lun", 2)))).await,
        Outcome::Done
    );
    assert_eq!(sm.apply(finish_block(120)).await, Outcome::Done);
    (d, sm)
}

#[tokio::test]
async fn create_takes_the_size_from_its_bhv_and_shows_once_finished() {
    let (_d, mut sm) = fresh().await;
    assert_eq!(
        sm.apply(begin(120, create(block(30, "lun", 2)))).await,
        Outcome::Done
    );
    assert_eq!(bhv_free(&sm), 7);
    let b = get_blockvolume(&view(&sm), &id(30)).unwrap().unwrap();
    assert!(b.hidden && b.pending == Some(id(120)));
    // A plain finish cannot end it: its result is what gluster-block made.
    assert!(matches!(sm.apply(finish(120)).await, Outcome::Invalid(_)));
    assert_eq!(sm.apply(finish_block(120)).await, Outcome::Done);
    let b = get_blockvolume(&view(&sm), &id(30)).unwrap().unwrap();
    assert!(!b.hidden && b.pending.is_none());
    assert_eq!(
        (b.hacount, b.iqn.as_str()),
        (1, "iqn.2016-12.org.gluster-block:g")
    );
    let c = get_cluster(&view(&sm), &id(1)).unwrap().unwrap();
    assert!(c.blockvolumes.contains(&id(30)));
}

#[tokio::test]
async fn create_refusals_write_nothing_and_a_failure_gives_everything_back() {
    let failed = |m: &str| Outcome::Failed(format!("Failed to allocate new block volume: {m}"));
    let cases = [
        ("too big for the BHV", block(31, "big", 8), failed("No space")),
        (
            "name taken in the BHV",
            block(31, "lun", 1),
            failed("Block volume name 'lun' already in use"),
        ),
        (
            "not a BHV",
            BlockVolumeEntry {
                bhv: id(4),
                ..block(31, "x", 1)
            },
            failed(IN_USE),
        ),
        (
            "no BHV",
            BlockVolumeEntry {
                bhv: id(99),
                ..block(31, "x", 1)
            },
            failed("Block hosting volume not found"),
        ),
    ];
    for (name, b, want) in cases {
        let (_d, mut sm) = with_block().await;
        let before = records(&sm);
        assert_eq!(sm.apply(begin(121, create(b))).await, want, "{name}");
        assert!(records(&sm) == before, "{name}: a refusal writes nothing");
    }
    // A failure after begin: the BHV's space and the name come back.
    let (_d, mut sm) = with_block().await;
    let before = records(&sm);
    assert_eq!(
        sm.apply(begin(121, create(block(31, "lun2", 3)))).await,
        Outcome::Done
    );
    assert_eq!(bhv_free(&sm), 4);
    assert_eq!(sm.apply(fail(121)).await, Outcome::Done);
    assert!(records(&sm) == before, "a failed create leaves nothing");
}

#[tokio::test]
async fn a_bhv_made_for_a_block_volume_goes_with_it_when_the_create_fails() {
    let (_d, mut sm) = fresh().await;
    let before = records(&sm);
    let bhv = VolumeEntry {
        size: 5,
        block: true,
        block_free: 4,
        block_reserved: 1,
        ..volume(40, "newbhv", 1)
    };
    let plan = OpPlan::BlockVolumeCreate {
        block: Box::new(BlockVolumeEntry {
            bhv: id(40),
            ..block(31, "lun", 3)
        }),
        new_bhv: Some(Box::new(bhv)),
        bricks: vec![brick(41, &id(40))],
        prealloc: false,
    };
    assert_eq!(sm.apply(begin(121, plan)).await, Outcome::Done);
    let v = get_volume(&view(&sm), &id(40)).unwrap().unwrap();
    assert!(
        v.hidden && v.block_free == 1,
        "the new BHV is reserved, hidden, its space taken"
    );
    assert_eq!(sm.apply(fail(121)).await, Outcome::Done);
    assert!(records(&sm) == before, "BHV, bricks and block volume all gone");
}

#[tokio::test]
async fn delete_gives_the_space_back_and_a_bhv_with_block_volumes_refuses_deletion() {
    let (_d, mut sm) = with_block().await;
    assert_eq!(
        sm.apply(begin(122, OpPlan::VolumeDelete { volume: id(20) }))
            .await,
        Outcome::Conflict("Cannot delete a block hosting volume containing block volumes".into())
    );
    let del = || OpPlan::BlockVolumeDelete { block: id(30) };
    assert_eq!(sm.apply(begin(123, del())).await, Outcome::Done);
    assert_eq!(
        sm.apply(begin(124, del())).await,
        Outcome::NotFound,
        "hidden while deleted"
    );
    assert_eq!(sm.apply(fail(123)).await, Outcome::Done);
    assert!(
        !get_blockvolume(&view(&sm), &id(30)).unwrap().unwrap().hidden,
        "shows again"
    );
    assert_eq!(sm.apply(begin(125, del())).await, Outcome::Done);
    assert_eq!(sm.apply(finish(125)).await, Outcome::Done);
    assert!(get_blockvolume(&view(&sm), &id(30)).unwrap().is_none());
    assert_eq!(bhv_free(&sm), 9);
    assert!(get_cluster(&view(&sm), &id(1))
        .unwrap()
        .unwrap()
        .blockvolumes
        .is_empty());
    assert_eq!(
        sm.apply(begin(126, OpPlan::VolumeDelete { volume: id(20) }))
            .await,
        Outcome::Done
    );
}

#[tokio::test]
async fn expand_takes_the_growth_at_once_and_refuses_as_heketi() {
    let failed = |m: &str| Outcome::Failed(format!("Failed to allocate block volume expansion: {m}"));
    let (_d, mut sm) = with_block().await;
    let expand = |n: u64| OpPlan::BlockVolumeExpand {
        block: id(30),
        new_size: n,
    };
    for (n, want) in [
        (
            2,
            failed("Requested new-size 2 is same as current block volume size 2, nothing to be done."),
        ),
        (
            1,
            failed(
                "Requested new-size 1 is less than current block volume size 2, shrinking is not allowed.",
            ),
        ),
        (10, failed("No space")),
    ] {
        let before = records(&sm);
        assert_eq!(sm.apply(begin(130, expand(n))).await, want, "{n}");
        assert!(records(&sm) == before);
    }
    let before = records(&sm);
    assert_eq!(sm.apply(begin(131, expand(5))).await, Outcome::Done);
    assert_eq!(bhv_free(&sm), 4);
    assert_eq!(
        sm.apply(begin(132, expand(6))).await,
        failed(IN_USE),
        "one at a time"
    );
    assert_eq!(sm.apply(fail(131)).await, Outcome::Done);
    assert!(records(&sm) == before, "a failed expand gives the growth back");
    assert_eq!(sm.apply(begin(133, expand(5))).await, Outcome::Done);
    assert_eq!(sm.apply(finish(133)).await, Outcome::Done);
    let b = get_blockvolume(&view(&sm), &id(30)).unwrap().unwrap();
    assert_eq!((b.size, b.usable_size, b.pending), (5, 5, None));
    assert_eq!(bhv_free(&sm), 4);
}
