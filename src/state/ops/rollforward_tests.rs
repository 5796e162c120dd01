//! Roll forward: once a delete or an expand passed its point of no return (`OpStep 0`), a
//! failure never brings back a volume Gluster no longer has, nor releases a brick it uses.

use super::super::model::{OpKind, OpPlan, OpStatus};
use super::super::{get_brick, get_op, get_volume, Command};
use super::testing::{brick, id, op, used, view, world};

#[tokio::test]
async fn a_delete_failed_before_its_mark_shows_the_volume_again_after_it_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = world(dir.path()).await;
    let delete = |n| op(n, OpKind::VolumeDelete, OpPlan::VolumeDelete { volume: id(4) });
    let fail = |n| Command::OpFail {
        id: id(n),
        error: "boom".into(),
        now: 3,
    };
    sm.apply(delete(200)).await;
    assert!(get_volume(&view(&sm), &id(4)).unwrap().unwrap().hidden);
    sm.apply(fail(200)).await;
    let v = get_volume(&view(&sm), &id(4)).unwrap().unwrap();
    assert!(
        !v.hidden && v.pending.is_none(),
        "before the mark: back as it was"
    );

    sm.apply(delete(201)).await;
    sm.apply(Command::OpStep {
        id: id(201),
        index: 0,
    })
    .await;
    assert_eq!(get_op(&view(&sm), &id(201)).unwrap().unwrap().progress, 1);
    sm.apply(fail(201)).await;
    assert!(
        get_volume(&view(&sm), &id(4)).unwrap().is_none(),
        "past the mark the volume is gone for good"
    );
    assert_eq!(used(&sm), 0, "its brick's space is back");
    let o = get_op(&view(&sm), &id(201)).unwrap().unwrap();
    assert_eq!(o.status, OpStatus::Failed);
}

#[tokio::test]
async fn an_expand_past_its_mark_keeps_exactly_the_bricks_gluster_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = world(dir.path()).await;
    let before = used(&sm);
    let (b6, b7) = (brick(6, &id(4)), brick(7, &id(4)));
    let alloc = b6.allocation();
    sm.apply(op(
        300,
        OpKind::VolumeExpand,
        OpPlan::VolumeExpand {
            volume: id(4),
            bricks: vec![b6.clone(), b7.clone()],
            delta: 2,
        },
    ))
    .await;
    assert_eq!(used(&sm), before + 2 * alloc);
    sm.apply(Command::OpStep {
        id: id(300),
        index: 0,
    })
    .await;
    // A plain failure past the mark is refused: nothing changes.
    sm.apply(Command::OpFail {
        id: id(300),
        error: "boom".into(),
        now: 3,
    })
    .await;
    assert_eq!(
        get_op(&view(&sm), &id(300)).unwrap().unwrap().status,
        OpStatus::Pending
    );
    assert_eq!(used(&sm), before + 2 * alloc);
    // A brick not of this operation is refused too.
    sm.apply(Command::OpFailKept {
        id: id(300),
        kept: vec![id(5)],
        error: "boom".into(),
        now: 3,
    })
    .await;
    assert_eq!(
        get_op(&view(&sm), &id(300)).unwrap().unwrap().status,
        OpStatus::Pending
    );

    sm.apply(Command::OpFailKept {
        id: id(300),
        kept: vec![id(6)],
        error: "add-brick refused".into(),
        now: 3,
    })
    .await;
    let o = get_op(&view(&sm), &id(300)).unwrap().unwrap();
    assert_eq!(
        (o.status, o.error.as_deref()),
        (OpStatus::Failed, Some("add-brick refused"))
    );
    let v = get_volume(&view(&sm), &id(4)).unwrap().unwrap();
    assert_eq!(v.bricks.iter().cloned().collect::<Vec<_>>(), vec![id(5), id(6)]);
    assert_eq!(v.size, 2, "one of two new bricks: half of the 2 GiB");
    assert!(v.pending.is_none());
    assert_eq!(
        used(&sm),
        before + alloc,
        "the brick Gluster does not have is released"
    );
    assert!(get_brick(&view(&sm), &id(7)).unwrap().is_none());
    assert!(get_brick(&view(&sm), &id(6)).unwrap().unwrap().pending.is_none());
}

#[tokio::test]
async fn an_expand_failed_before_its_mark_releases_every_new_brick() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = world(dir.path()).await;
    let before = used(&sm);
    sm.apply(op(
        400,
        OpKind::VolumeExpand,
        OpPlan::VolumeExpand {
            volume: id(4),
            bricks: vec![brick(6, &id(4))],
            delta: 1,
        },
    ))
    .await;
    sm.apply(Command::OpFail {
        id: id(400),
        error: "boom".into(),
        now: 3,
    })
    .await;
    assert_eq!(
        get_op(&view(&sm), &id(400)).unwrap().unwrap().status,
        OpStatus::Failed
    );
    assert_eq!(used(&sm), before);
    assert_eq!(get_volume(&view(&sm), &id(4)).unwrap().unwrap().size, 1);
}
