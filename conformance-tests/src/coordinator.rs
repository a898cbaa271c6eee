//! The coordinator conformance suite: plain async functions, each taking a
//! [`Harness`], that every backend runs through
//! [`coordinator_suite!`](crate::coordinator_suite).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{
    Coordinator, CreateMode, ErrorKind, NodePath, Op, OpResult, SessionEvent, SessionState,
    WatchEvent, WatchKind, WatchStream,
};
use tokio::sync::Barrier;

pub(crate) use crate::capabilities::skipped;
pub use crate::capabilities::{
    missing_capabilities_are_unsupported, sessions_share_the_namespace, CASE_NEEDS,
};
use crate::harness::{skip, Harness};

/// How long [`every_change_reported_promptly`] waits for each event: an
/// event arrives in milliseconds, so a lost one fails the case in seconds
/// rather than after [`EVENT_TIMEOUT`].
pub const PROMPT_EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a case waits for an event the backend owes it. Events arrive in
/// milliseconds; this bound only turns a lost event into a failure instead
/// of a hang.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn p(s: &str) -> NodePath {
    NodePath::parse(s).expect("test paths are valid")
}

pub(crate) async fn next_event(stream: &mut WatchStream, what: &str) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("watch stream ended while waiting for {what}"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?} while waiting for {what}"),
    }
}

/// Reads events until `done` holds after re-reading, as a consumer does: every
/// event (including `Resync`) is a cue to re-read.
pub(crate) async fn until_reread<F, Fut>(
    stream: &mut WatchStream,
    what: &str,
    mut done: F,
) -> Vec<WatchEvent>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut seen = Vec::new();
    loop {
        seen.push(next_event(stream, what).await);
        if done().await {
            return seen;
        }
    }
}

async fn data(c: &dyn Coordinator, path: &str) -> Vec<u8> {
    c.get(&p(path)).await.expect("node readable").data
}

/// get/create/set/delete and the error kinds of each.
pub async fn create_get_set_delete(h: &dyn Harness) {
    let c = h.connect().await;
    let path = p("/crud/node");
    assert_eq!(c.get(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(c.exists(&path).await.unwrap(), None);

    assert_eq!(
        c.create(&path, b"one", CreateMode::Persistent)
            .await
            .unwrap(),
        path
    );
    let node = c.get(&path).await.unwrap();
    assert_eq!(node.data, b"one");
    assert_eq!(node.stat.version, 0);
    assert_eq!(node.stat.ephemeral_owner, None);
    assert_eq!(c.exists(&path).await.unwrap(), Some(node.stat));

    let err = c
        .create(&path, b"again", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        data(&*c, "/crud/node").await,
        b"one",
        "a failed create changes nothing"
    );

    let stat = c.set(&path, b"two", None).await.unwrap();
    assert_eq!(stat.version, 1);
    assert!(stat.modified_revision > node.stat.modified_revision);
    assert_eq!(data(&*c, "/crud/node").await, b"two");
    c.set(&path, b"", None).await.unwrap();
    assert_eq!(data(&*c, "/crud/node").await, b"", "empty data is data");

    assert_eq!(
        c.set(&p("/crud/missing"), b"x", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        c.delete(&p("/crud/missing"), None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        c.delete(&p("/crud"), None).await.unwrap_err().kind(),
        ErrorKind::NotEmpty
    );
    assert_eq!(
        c.delete(&NodePath::root(), None).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        c.create(&NodePath::root(), b"", CreateMode::Persistent)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );

    c.delete(&path, None).await.unwrap();
    assert_eq!(c.exists(&path).await.unwrap(), None);
    c.delete(&p("/crud"), None).await.unwrap();
    // Re-creating starts a fresh version history.
    c.create(&path, b"three", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.get(&path).await.unwrap().stat.version, 0);
}

/// Missing parents are created as empty persistent nodes.
pub async fn create_makes_missing_parents(h: &dyn Harness) {
    let c = h.connect().await;
    c.create(&p("/a/b/c/d"), b"leaf", CreateMode::Persistent)
        .await
        .unwrap();
    for parent in ["/a", "/a/b", "/a/b/c"] {
        let node = c.get(&p(parent)).await.unwrap();
        assert_eq!(node.data, b"", "{parent} is empty");
        assert_eq!(node.stat.ephemeral_owner, None, "{parent} is persistent");
    }
}

/// An ephemeral leaf still gets persistent parents.
pub async fn ephemeral_leaf_gets_persistent_parents(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "ephemeral_leaf_gets_persistent_parents") {
        return;
    }
    c.create(&p("/e1/e2/leaf"), b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(
        c.get(&p("/e1/e2")).await.unwrap().stat.ephemeral_owner,
        None
    );
}

/// Compare-and-set: a stale version is `BadVersion` and changes nothing.
pub async fn compare_and_set_conflicts(h: &dyn Harness) {
    let c = h.connect().await;
    let other = h.connect().await;
    let path = p("/cas/node");
    c.create(&path, b"v0", CreateMode::Persistent)
        .await
        .unwrap();
    let stat = c.set(&path, b"v1", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);

    // Another session moves the node on; our version 1 is now stale.
    other.set(&path, b"theirs", Some(1)).await.unwrap();
    let err = c.set(&path, b"mine", Some(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadVersion, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        data(&*c, "/cas/node").await,
        b"theirs",
        "no silent overwrite"
    );

    assert_eq!(
        c.delete(&path, Some(0)).await.unwrap_err().kind(),
        ErrorKind::BadVersion
    );
    assert_eq!(data(&*c, "/cas/node").await, b"theirs");
    c.delete(&path, Some(2)).await.unwrap();
    assert_eq!(
        c.set(&path, b"x", Some(2)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Sequential names carry a 10-digit counter that grows within the parent.
pub async fn sequential_ordering(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "sequential_ordering") {
        return;
    }
    let ephemeral = c.capabilities().ephemeral_nodes;
    let mut names = Vec::new();
    for i in 0..12 {
        let mode = if i % 2 == 0 || !ephemeral {
            CreateMode::PersistentSequential
        } else {
            CreateMode::EphemeralSequential
        };
        let created = c
            .create(&p("/seq/item-"), format!("{i}").as_bytes(), mode)
            .await
            .unwrap();
        let name = created.name().to_owned();
        let digits = name.strip_prefix("item-").expect("prefix kept");
        assert_eq!(digits.len(), 10, "{name}");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{name}");
        names.push(name);
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names, "counters strictly increase");
    // Deleting does not reuse counters.
    c.delete(&p(&format!("/seq/{}", names[11])), None)
        .await
        .unwrap();
    let next = c
        .create(&p("/seq/item-"), b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(
        next.name() > names[11].as_str(),
        "{} after {}",
        next.name(),
        names[11]
    );
    // Another parent has its own counter, and other sessions share ours.
    let other = h.connect().await;
    let theirs = other
        .create(&p("/seq/item-"), b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(theirs.name() > next.name());
    assert_eq!(c.children(&p("/seq")).await.unwrap().len(), 13);
}

/// `children` lists direct children by name, sorted.
pub async fn children_listing(h: &dyn Harness) {
    let c = h.connect().await;
    for name in ["zeta", "alpha", "mid", "alpha/deep", "mid/deeper/deepest"] {
        c.create(&p(&format!("/list/{name}")), b"", CreateMode::Persistent)
            .await
            .unwrap();
    }
    c.create(&p("/list-sibling"), b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        c.children(&p("/list")).await.unwrap(),
        ["alpha", "mid", "zeta"]
    );
    assert_eq!(c.children(&p("/list/alpha")).await.unwrap(), ["deep"]);
    assert!(c.children(&p("/list/zeta")).await.unwrap().is_empty());
    assert_eq!(
        c.children(&p("/list/none")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let root = c.children(&NodePath::root()).await.unwrap();
    assert!(
        root.contains(&"list".to_owned()) && root.contains(&"list-sibling".to_owned()),
        "{root:?}"
    );
}

/// A transaction applies all of its operations or none.
pub async fn transactions_all_or_nothing(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "transactions_all_or_nothing") {
        return;
    }
    let sequential = c.capabilities().sequential_nodes;
    c.create(&p("/tx/a"), b"a0", CreateMode::Persistent)
        .await
        .unwrap();
    c.create(&p("/tx/gone"), b"", CreateMode::Persistent)
        .await
        .unwrap();

    let mut ops = vec![
        Op::Check {
            path: p("/tx/a"),
            version: 0,
        },
        Op::Create {
            path: p("/tx/new/deep"),
            data: b"n".to_vec(),
            mode: CreateMode::Persistent,
        },
        Op::Set {
            path: p("/tx/new/deep"),
            data: b"n2".to_vec(),
            expected_version: Some(0),
        },
        Op::Set {
            path: p("/tx/a"),
            data: b"a1".to_vec(),
            expected_version: Some(0),
        },
        Op::Delete {
            path: p("/tx/gone"),
            expected_version: None,
        },
    ];
    if sequential {
        ops.push(Op::Create {
            path: p("/tx/s-"),
            data: vec![],
            mode: CreateMode::PersistentSequential,
        });
    }
    let results = c.transaction(ops).await.unwrap();
    assert_eq!(results.len(), if sequential { 6 } else { 5 });
    assert_eq!(results[0], OpResult::Checked);
    assert_eq!(results[1], OpResult::Created(p("/tx/new/deep")));
    assert!(
        matches!(results[2], OpResult::Set(s) if s.version == 1),
        "{:?}",
        results[2]
    );
    assert!(matches!(results[3], OpResult::Set(s) if s.version == 1));
    assert_eq!(results[4], OpResult::Deleted);
    assert!(
        !sequential
            || matches!(&results[5], OpResult::Created(path) if path.name().starts_with("s-") && path.name().len() == 12)
    );
    assert_eq!(
        data(&*c, "/tx/new/deep").await,
        b"n2",
        "later operations see earlier ones"
    );
    assert_eq!(data(&*c, "/tx/a").await, b"a1");
    assert_eq!(c.exists(&p("/tx/gone")).await.unwrap(), None);

    // The fourth operation fails: nothing of the first three remains.
    let err = c
        .transaction(vec![
            Op::Set {
                path: p("/tx/a"),
                data: b"a2".to_vec(),
                expected_version: Some(1),
            },
            Op::Create {
                path: p("/tx/other/x"),
                data: vec![],
                mode: CreateMode::Persistent,
            },
            Op::Delete {
                path: p("/tx/new/deep"),
                expected_version: None,
            },
            Op::Check {
                path: p("/tx/a"),
                version: 1,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadVersion, "{err}");
    assert_eq!(err.operation_index(), Some(3), "{err}");
    assert_eq!(data(&*c, "/tx/a").await, b"a1");
    assert_eq!(c.exists(&p("/tx/other/x")).await.unwrap(), None);
    assert_eq!(
        c.exists(&p("/tx/other")).await.unwrap(),
        None,
        "no parent left behind"
    );
    assert_eq!(data(&*c, "/tx/new/deep").await, b"n2");

    for (ops, kind, index) in [
        (
            vec![Op::Create {
                path: p("/tx/a"),
                data: vec![],
                mode: CreateMode::Persistent,
            }],
            ErrorKind::AlreadyExists,
            0,
        ),
        (
            vec![
                Op::Check {
                    path: p("/tx/a"),
                    version: 1,
                },
                Op::Delete {
                    path: p("/tx/missing"),
                    expected_version: None,
                },
            ],
            ErrorKind::NotFound,
            1,
        ),
        (
            vec![Op::Delete {
                path: p("/tx/new"),
                expected_version: None,
            }],
            ErrorKind::NotEmpty,
            0,
        ),
    ] {
        let err = c.transaction(ops).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.operation_index()),
            (kind, Some(index)),
            "{err}"
        );
    }
    assert!(c.transaction(Vec::new()).await.unwrap().is_empty());
}

/// An ephemeral node goes away when its session is closed, and the other
/// sessions' watches see it go.
pub async fn ephemeral_removed_on_close(h: &dyn Harness) {
    let observer = h.connect().await;
    if skipped(h, &*observer, "ephemeral_removed_on_close") {
        return;
    }
    let owner = h.connect().await;
    let path = p("/eph/close");
    owner
        .create(&path, b"me", CreateMode::Ephemeral)
        .await
        .unwrap();
    let stat = observer
        .exists(&path)
        .await
        .unwrap()
        .expect("visible to others");
    assert_eq!(stat.ephemeral_owner, owner.session_id());
    assert!(stat.ephemeral_owner.is_some());
    let mut watch = observer.watch(&path, WatchKind::Data).await.unwrap();

    let err = owner
        .create(&p("/eph/close/child"), b"", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidArgument,
        "ephemeral nodes have no children: {err}"
    );

    owner.close().await.unwrap();
    assert_eq!(owner.session_state(), SessionState::Closed);
    assert_eq!(
        owner.get(&path).await.unwrap_err().kind(),
        ErrorKind::Unavailable,
        "closed sessions refuse calls"
    );
    assert_eq!(
        next_event(&mut watch, "the ephemeral node's deletion").await,
        WatchEvent::Deleted
    );
    assert_eq!(observer.exists(&path).await.unwrap(), None);
}

/// An ephemeral node goes away when its session expires; the coordinator
/// reports the expiry, builds a new session, and the owner can re-create it.
pub async fn ephemeral_removed_on_expiry(h: &dyn Harness) {
    let observer = h.connect().await;
    if skipped(h, &*observer, "ephemeral_removed_on_expiry") {
        return;
    }
    let owner = h.connect().await;
    let path = p("/eph/expire");
    owner
        .create(&path, b"me", CreateMode::Ephemeral)
        .await
        .unwrap();
    let old_session = owner.session_id();
    let mut watch = observer.watch(&path, WatchKind::Data).await.unwrap();
    let mut events = owner.session_events();

    owner.expire().await.unwrap();
    assert_eq!(
        next_event(&mut watch, "deletion on expiry").await,
        WatchEvent::Deleted
    );
    assert_eq!(observer.exists(&path).await.unwrap(), None);
    let mut seen = Vec::new();
    while !seen.contains(&SessionEvent::Connected) {
        let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
            .await
            .expect("session events")
            .expect("stream open");
        seen.push(event);
    }
    assert!(seen.contains(&SessionEvent::Expired), "{seen:?}");
    assert_eq!(owner.session_state(), SessionState::Connected);
    assert_ne!(owner.session_id(), old_session, "a new session");

    owner
        .create(&path, b"back", CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut watch, "re-creation").await,
        WatchEvent::Changed
    );
    assert_eq!(
        observer.get(&path).await.unwrap().stat.ephemeral_owner,
        owner.session_id()
    );
}

/// A data watch reports creation, changes and deletion; it may start on a
/// node that does not exist yet.
pub async fn data_watch_events(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "data_watch_events") {
        return;
    }
    let writer = h.connect().await;
    let path = p("/watch/data");
    let mut watch = c.watch(&path, WatchKind::Data).await.unwrap();
    writer
        .create(&path, b"1", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut watch, "creation").await,
        WatchEvent::Changed
    );
    writer.set(&path, b"2", None).await.unwrap();
    assert_eq!(
        next_event(&mut watch, "a change").await,
        WatchEvent::Changed
    );
    assert_eq!(data(&*c, "/watch/data").await, b"2");
    writer.delete(&path, None).await.unwrap();
    assert_eq!(
        next_event(&mut watch, "deletion").await,
        WatchEvent::Deleted
    );

    // A burst ends with the consumer seeing the last value.
    writer
        .create(&path, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    for i in 1..=20 {
        writer
            .set(&path, format!("{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    until_reread(&mut watch, "the burst's last value", || async {
        data(&*c, "/watch/data").await == b"20"
    })
    .await;
}

/// A children watch reports children created and deleted.
pub async fn children_watch_events(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "children_watch_events") {
        return;
    }
    let ephemeral = c.capabilities().ephemeral_nodes;
    let writer = h.connect().await;
    let parent = p("/watch/kids");
    writer
        .create(&parent, b"", CreateMode::Persistent)
        .await
        .unwrap();
    let mut watch = c.watch(&parent, WatchKind::Children).await.unwrap();
    writer
        .create(&p("/watch/kids/a"), b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut watch, "a child created").await,
        WatchEvent::Changed
    );
    writer
        .create(
            &p("/watch/kids/b"),
            b"",
            if ephemeral {
                CreateMode::Ephemeral
            } else {
                CreateMode::Persistent
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut watch, "another child").await,
        WatchEvent::Changed
    );
    assert_eq!(c.children(&parent).await.unwrap(), ["a", "b"]);
    writer.delete(&p("/watch/kids/a"), None).await.unwrap();
    assert_eq!(
        next_event(&mut watch, "a child deleted").await,
        WatchEvent::Changed
    );
    assert_eq!(c.children(&parent).await.unwrap(), ["b"]);
    // A grandchild is not a child; the next event is for the ephemeral child
    // leaving with its session (or deleted, without ephemeral nodes).
    writer
        .create(
            &p("/watch/kids/b-dir/grandchild"),
            b"",
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut watch, "b-dir created as a parent").await,
        WatchEvent::Changed
    );
    if ephemeral {
        writer.close().await.unwrap();
    } else {
        writer.delete(&p("/watch/kids/b"), None).await.unwrap();
    }
    until_reread(&mut watch, "the ephemeral child leaving", || async {
        c.children(&parent).await.unwrap() == ["b-dir"]
    })
    .await;

    // A children watch may start before the node exists.
    let mut early = c
        .watch(&p("/watch/later"), WatchKind::Children)
        .await
        .unwrap();
    c.create(&p("/watch/later/x"), b"", CreateMode::Persistent)
        .await
        .unwrap();
    until_reread(
        &mut early,
        "children of a node created after the watch",
        || async {
            c.children(&p("/watch/later"))
                .await
                .map(|k| k == ["x"])
                .unwrap_or(false)
        },
    )
    .await;
}

/// Watches survive session expiry: `Resync`, then normal events, and no
/// version is missed.
pub async fn watch_survives_session_expiry(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "watch_survives_session_expiry") {
        return;
    }
    let writer = h.connect().await;
    let path = p("/watch/expiry");
    writer
        .create(&path, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut watch = c.watch(&path, WatchKind::Data).await.unwrap();
    c.expire().await.unwrap();
    assert_eq!(
        next_event(&mut watch, "resync after expiry").await,
        WatchEvent::Resync
    );

    // A change right after the new session may be covered by a later
    // Resync (the watch re-arms on the new session) or reported as Changed;
    // either way the consumer's re-read finds it.
    writer.set(&path, b"1", None).await.unwrap();
    until_reread(&mut watch, "the first change after expiry", || async {
        data(&*c, "/watch/expiry").await == b"1"
    })
    .await;

    // Once re-armed, changes arrive as plain events again.
    writer.set(&path, b"2", None).await.unwrap();
    let mut event = next_event(&mut watch, "a change after expiry").await;
    while event == WatchEvent::Resync {
        event = next_event(&mut watch, "a change after expiry").await;
    }
    assert_eq!(event, WatchEvent::Changed);
    assert_eq!(data(&*c, "/watch/expiry").await, b"2");
}

/// Watches survive a server restart: whatever the backend reports across
/// the gap (`Resync` or the change itself), the consumer ends up with the
/// change made after the restart, and events flow normally afterwards.
pub async fn watch_survives_server_restart(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "watch_survives_server_restart",
            "this harness cannot restart its server",
        );
    }
    let c = h.connect().await;
    if skipped(h, &*c, "watch_survives_server_restart") {
        return;
    }
    let path = p("/watch/restart");
    c.create(&path, b"before", CreateMode::Persistent)
        .await
        .unwrap();
    let mut watch = c.watch(&path, WatchKind::Data).await.unwrap();
    let mut kids = c.watch(&p("/watch"), WatchKind::Children).await.unwrap();
    h.restart_server().await;

    let writer = h.connect().await;
    writer.set(&path, b"after", None).await.unwrap();
    let seen = until_reread(&mut watch, "the change after the restart", || async {
        c.get(&path)
            .await
            .map(|n| n.data == b"after")
            .unwrap_or(false)
    })
    .await;
    assert!(
        seen.iter()
            .all(|e| matches!(e, WatchEvent::Resync | WatchEvent::Changed)),
        "{seen:?}"
    );

    writer.set(&path, b"later", None).await.unwrap();
    until_reread(&mut watch, "a normal change after the restart", || async {
        c.get(&path)
            .await
            .map(|n| n.data == b"later")
            .unwrap_or(false)
    })
    .await;
    writer
        .create(&p("/watch/new-child"), b"", CreateMode::Persistent)
        .await
        .unwrap();
    until_reread(&mut kids, "a child created after the restart", || async {
        c.children(&p("/watch"))
            .await
            .map(|k| k.contains(&"new-child".to_owned()))
            .unwrap_or(false)
    })
    .await;
}

/// While the server is down, calls fail with a retryable error (no hang,
/// no panic); once it is back, the same coordinator works again.
pub async fn outage_gives_retryable_errors(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "outage_gives_retryable_errors",
            "this harness cannot stop its server",
        );
    }
    let c = h.connect().await;
    let path = p("/outage/node");
    c.create(&path, b"kept", CreateMode::Persistent)
        .await
        .unwrap();
    let mut events = c.session_events();
    h.stop_server().await;

    // Bounded only so that a hang fails the case instead of the run.
    let bound = EVENT_TIMEOUT * 2;
    let get = tokio::time::timeout(bound, c.get(&path))
        .await
        .expect("get during an outage hung");
    let err = get.expect_err("no server, no read");
    assert!(
        err.is_retryable(),
        "get during an outage: {err} should be retryable"
    );
    let set = tokio::time::timeout(bound, c.set(&path, b"lost", None))
        .await
        .expect("set during an outage hung");
    let err = set.expect_err("no server, no write");
    assert!(
        err.is_retryable(),
        "set during an outage: {err} should be retryable"
    );

    h.start_server().await;
    // The session survives a short outage: wait for the reconnect.
    while c.session_state() != SessionState::Connected {
        tokio::time::timeout(EVENT_TIMEOUT * 2, events.next())
            .await
            .expect("reconnects")
            .expect("events");
    }
    assert_eq!(data(&*c, "/outage/node").await, b"kept");
    c.set(&path, b"after", None).await.unwrap();
    assert_eq!(data(&*c, "/outage/node").await, b"after");
}

/// N sessions doing compare-and-set increments on one counter: in each
/// round every session reads the same version before any of them writes
/// (the interleaving is forced, not hoped for), so exactly one write per
/// round wins and the others get `BadVersion`. A backend that ignores the
/// expected version lets every write win and fails here every time.
pub async fn concurrent_cas_increments(h: &dyn Harness) {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 10;
    let setup = h.connect().await;
    let path = p("/cas/counter");
    setup
        .create(&path, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let session = h.connect().await;
        let path = path.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            for _ in 0..ROUNDS {
                let node = session.get(&path).await.unwrap();
                let n: usize = std::str::from_utf8(&node.data).unwrap().parse().unwrap();
                // Everyone has read before anyone writes.
                barrier.wait().await;
                match session
                    .set(
                        &path,
                        (n + 1).to_string().as_bytes(),
                        Some(node.stat.version),
                    )
                    .await
                {
                    Ok(_) => wins += 1,
                    Err(e) if e.kind() == ErrorKind::BadVersion => {}
                    Err(e) => panic!("increment failed: {e}"),
                }
                // Everyone has written before anyone reads again.
                barrier.wait().await;
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap();
    }
    assert_eq!(
        wins, ROUNDS,
        "{WRITERS} sessions set the version they all read: exactly one per round may win"
    );
    let node = setup.get(&path).await.unwrap();
    assert_eq!(std::str::from_utf8(&node.data).unwrap(), ROUNDS.to_string());
    assert_eq!(node.stat.version as usize, ROUNDS);
}

/// Every change is reported, one write at a time, each within
/// [`PROMPT_EVENT_TIMEOUT`]: a watch that loses events fails here in
/// seconds.
pub async fn every_change_reported_promptly(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "every_change_reported_promptly") {
        return;
    }
    let writer = h.connect().await;
    let path = p("/watch/each");
    let mut watch = c.watch(&path, WatchKind::Data).await.unwrap();
    for i in 0..12 {
        let value = i.to_string();
        if i == 0 {
            writer
                .create(&path, value.as_bytes(), CreateMode::Persistent)
                .await
                .unwrap();
        } else {
            writer.set(&path, value.as_bytes(), None).await.unwrap();
        }
        match tokio::time::timeout(PROMPT_EVENT_TIMEOUT, watch.next()).await {
            Ok(Some(WatchEvent::Changed | WatchEvent::Resync)) => {}
            Ok(other) => panic!("write {i}: {other:?} instead of Changed"),
            Err(_) => panic!("write {i} was not reported within {PROMPT_EVENT_TIMEOUT:?}"),
        }
        assert_eq!(data(&*c, "/watch/each").await, value.as_bytes());
    }
}

/// Malformed paths never reach a backend; oversized data is `TooLarge`, and
/// data at the limit is accepted.
pub async fn bad_input_rejected(h: &dyn Harness) {
    for bad in [
        "",
        "relative",
        "/trailing/",
        "/a//b",
        "/a/../b",
        "/a/./b",
        "/nul\0",
        "/sp ace",
        "/zookeeper",
    ] {
        let err = NodePath::parse(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    let c = h.connect().await;
    let limit = c.capabilities().max_data_size;
    let path = p("/big/node");
    let err = c
        .create(&path, &vec![7u8; limit + 1], CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(
        c.exists(&p("/big")).await.unwrap(),
        None,
        "nothing written, not even parents"
    );
    c.create(&path, &vec![7u8; limit], CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.get(&path).await.unwrap().data.len(), limit);
    assert_eq!(
        c.set(&path, &vec![1u8; limit + 1], None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TooLarge
    );
    assert_eq!(c.get(&path).await.unwrap().data.len(), limit);
    let err = c.set(&path, b"x", Some(u64::MAX)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadVersion);
}

/// An oversized operation fails its transaction with `TooLarge` at its
/// index, and the operations before it are not applied.
pub async fn oversized_operation_fails_its_transaction(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "oversized_operation_fails_its_transaction") {
        return;
    }
    let limit = c.capabilities().max_data_size;
    let path = p("/big/tx");
    c.create(&path, &vec![7u8; limit], CreateMode::Persistent)
        .await
        .unwrap();
    let err = c
        .transaction(vec![
            Op::Set {
                path: path.clone(),
                data: vec![],
                expected_version: None,
            },
            Op::Set {
                path: path.clone(),
                data: vec![1u8; limit + 1],
                expected_version: None,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.operation_index()),
        (ErrorKind::TooLarge, Some(1))
    );
    assert_eq!(c.get(&path).await.unwrap().data, vec![7u8; limit]);
}

/// Closing ends the session's watch streams and session state.
pub async fn close_ends_watches(h: &dyn Harness) {
    let c = h.connect().await;
    if skipped(h, &*c, "close_ends_watches") {
        return;
    }
    let mut watch = c.watch(&p("/closing"), WatchKind::Data).await.unwrap();
    assert_eq!(c.session_state(), SessionState::Connected);
    c.close().await.unwrap();
    let end = tokio::time::timeout(EVENT_TIMEOUT, async {
        while watch.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the watch stream ends after close");
    assert_eq!(c.session_state(), SessionState::Closed);
}

/// Generates one test per conformance case for a backend, and a
/// `capabilities_summary` test that prints which cases the backend's
/// declared capabilities skip.
///
/// `$harness` is an async function `(ServerNeeds, &'static str) ->
/// Option<impl Harness>` taking what the case needs of its server and the
/// case's name; `None` means the run opted out of external servers and the
/// case is skipped (with a message).
///
/// The tests are plain `#[test]`s that run the case on a runtime of the
/// kit's own: the calling crate needs no `tokio`.
#[macro_export]
macro_rules! coordinator_suite {
    ($harness:path) => {
        $crate::coordinator_suite!(@cases $harness, coordinator, $crate::ServerNeeds::Shared;
            create_get_set_delete, create_makes_missing_parents,
            ephemeral_leaf_gets_persistent_parents, compare_and_set_conflicts,
            sequential_ordering, children_listing, transactions_all_or_nothing,
            ephemeral_removed_on_close, ephemeral_removed_on_expiry, data_watch_events,
            children_watch_events, every_change_reported_promptly,
            watch_survives_session_expiry, concurrent_cas_increments, bad_input_rejected,
            oversized_operation_fails_its_transaction, close_ends_watches,
            missing_capabilities_are_unsupported, sessions_share_the_namespace);
        $crate::coordinator_suite!(@cases $harness, coordinator, $crate::ServerNeeds::Restartable;
            watch_survives_server_restart, outage_gives_retryable_errors);
        $crate::coordinator_suite!(@cases $harness, discovery, $crate::ServerNeeds::Shared;
            serverset_join_and_leave, serverset_member_survives_session_expiry,
            serverset_reads_members_of_other_clients, serverset_hosts_provider_follows_members);
        $crate::coordinator_suite!(@cases $harness, discovery, $crate::ServerNeeds::Restartable;
            serverset_member_survives_server_restart);

        #[test]
        fn capabilities_summary() {
            $crate::harness::run_case(async {
                if let Some(harness) = $harness($crate::ServerNeeds::Shared, "capabilities_summary").await {
                    $crate::capabilities::print_capabilities_summary(&harness).await;
                }
            });
        }
    };
    (@cases $harness:path, $module:ident, $needs:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::harness::run_case(async {
                    if let Some(harness) = $harness($needs, stringify!($case)).await {
                        $crate::$module::$case(&harness).await;
                    }
                });
            }
        )*
    };
}
