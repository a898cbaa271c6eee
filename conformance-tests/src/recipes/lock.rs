//! The lock's cases: exclusion checked by fenced writes under expiry,
//! fairness without a herd, lost replies, expiry, suspension, and a killed
//! holder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath, Op, SessionState, WatchKind};
use kingpin_recipes::{Error, HoldState, Lock, LockGuard, LossReason, NotHeldReason};
use tokio::sync::{mpsc, oneshot};

use super::faults::FaultyCoordinator;
use super::peer::Peer;
use super::{p, within};
use crate::harness::{skip, Harness, TestSession};

const LOCK: &str = "/recipes/lock";
const FENCED: &str = "/recipes/fenced";

/// What became of a fenced write.
#[derive(Debug)]
pub(crate) enum Fenced {
    /// Committed; the token it replaced.
    Committed { after: u64 },
    /// Refused: the hold is not held.
    Refused(Error),
}

/// Writes the guard's token to `fenced` if the hold is still held: the
/// ownership check, a check that `fenced` did not change since it was read,
/// and the write, in one transaction.
///
/// Panics on evidence of two holders: a committed write after a larger
/// token, or `fenced` changed by someone else between our read and our
/// commit while we held.
pub(crate) async fn fenced_write(
    c: &dyn Coordinator,
    guard: &LockGuard,
    fenced: &NodePath,
) -> Fenced {
    let token = guard.token().value();
    loop {
        let node = match c.get(fenced).await {
            Ok(node) => node,
            Err(e) if e.is_retryable() && guard.is_held() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) if e.is_retryable() => return Fenced::Refused(e.into()),
            Err(e) => panic!("cannot read the fenced node: {e}"),
        };
        let last: u64 = std::str::from_utf8(&node.data)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("the fenced node holds {:?}", node.data));
        let ops = vec![
            Op::Check {
                path: fenced.clone(),
                version: node.stat.version,
            },
            Op::Set {
                path: fenced.clone(),
                data: token.to_string().into_bytes(),
                expected_version: None,
            },
        ];
        match guard.guarded_transaction(ops).await {
            Ok(_) => {
                assert!(
                    last <= token,
                    "two holders: token {token} committed after token {last}"
                );
                return Fenced::Committed { after: last };
            }
            Err(e @ Error::NotHeld { .. }) => return Fenced::Refused(e),
            Err(Error::Coordinator(e))
                if e.kind() == ErrorKind::BadVersion && e.operation_index() == Some(0) =>
            {
                panic!("two holders: the fenced node changed while token {token} held the lock")
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("a fenced write failed: {e}"),
        }
    }
}

/// Waits until `path`'s children satisfy `done` (a missing node has
/// none), re-reading on every event.
pub(crate) async fn until_children(
    c: &dyn Coordinator,
    path: &NodePath,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let mut watch = c.watch(path, WatchKind::Children).await.expect("a watch");
    within(what, async {
        loop {
            match c.children(path).await {
                Ok(children) if done(&children) => return,
                Err(e) if e.kind() == ErrorKind::NotFound && done(&[]) => return,
                _ => {}
            }
            watch.next().await;
        }
    })
    .await;
}

/// Waits until `path` has no children.
pub(crate) async fn until_no_children(c: &dyn Coordinator, path: &NodePath, what: &str) {
    until_children(c, path, what, <[String]>::is_empty).await;
}

/// Waits until `lock` has `n` contenders (as `c` reads them); returns
/// their nodes in queue order.
pub(crate) async fn until_contenders(c: &dyn Coordinator, lock: &Lock, n: usize) -> Vec<NodePath> {
    let mut watch = c
        .watch(lock.path(), WatchKind::Children)
        .await
        .expect("a watch");
    within(&format!("{n} contenders"), async {
        loop {
            let contenders = lock.contenders().await.expect("contenders");
            if contenders.len() == n {
                return contenders.into_iter().map(|c| c.node).collect();
            }
            watch.next().await;
        }
    })
    .await
}

/// 8 contenders take the lock 50 times each, every holder writing its
/// token to a fenced node; three holders keep the lock until their session
/// is expired under them, and the first creates of each contender lose
/// their replies. No two holders ever commit (the fenced writes prove it),
/// tokens grow with every holder, a dead token's write is refused, and no
/// contender node is left behind.
pub async fn excludes_with_growing_tokens_under_expiry(h: &dyn Harness) {
    const CONTENDERS: usize = 8;
    const ROUNDS: usize = 50;
    const EXPIRED: [(usize, usize); 3] = [(1, 10), (4, 25), (6, 40)];
    let setup = h.connect().await;
    let fenced = p(FENCED);
    setup
        .create(&fenced, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..CONTENDERS {
        sessions.push(Arc::new(h.connect().await));
    }
    let (expire_tx, mut expire_rx) = mpsc::unbounded_channel::<(usize, oneshot::Sender<()>)>();
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let faulty = FaultyCoordinator::new(session.coordinator.clone());
        faulty.lose_next_create_replies(2);
        let lock = Lock::new(faulty.clone(), p(LOCK)).with_identifier(format!("c{i}"));
        let (expire_tx, fenced) = (expire_tx.clone(), fenced.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let guard = within("the lock", lock.lock()).await.expect("lock");
                match fenced_write(&*faulty, &guard, &fenced).await {
                    Fenced::Committed { after } => assert!(
                        after < guard.token().value(),
                        "token {} is not larger than the previous holder's {after}",
                        guard.token()
                    ),
                    Fenced::Refused(e) => panic!("a fresh holder was refused: {e}"),
                }
                if EXPIRED.contains(&(i, round)) {
                    let (done, expired) = oneshot::channel();
                    expire_tx.send((i, done)).expect("the expirer runs");
                    let mut state = guard.watch_state();
                    within(
                        "the hold to be lost",
                        state.wait_for(|s| matches!(s, HoldState::Lost(_))),
                    )
                    .await
                    .expect("the hold's state");
                    match guard.guarded_set(&fenced, b"late", None).await {
                        Err(Error::NotHeld { .. }) => {}
                        other => panic!("a dead token's write was not refused: {other:?}"),
                    }
                    within("the new session", expired).await.expect("expired");
                    // The coordinator refuses it too, not only the guard.
                    let refused = faulty
                        .transaction(vec![
                            guard.ownership_check(),
                            Op::Set {
                                path: fenced.clone(),
                                data: b"late".to_vec(),
                                expected_version: None,
                            },
                        ])
                        .await
                        .expect_err("a dead token's transaction");
                    assert_eq!(refused.operation_index(), Some(0), "{refused}");
                    continue;
                }
                match fenced_write(&*faulty, &guard, &fenced).await {
                    Fenced::Committed { .. } => {}
                    Fenced::Refused(e) => panic!("a holder was refused: {e}"),
                }
                guard.release().await.expect("released");
            }
            faulty.injected()
        }));
    }
    drop(expire_tx);
    let expirer = tokio::spawn(async move {
        while let Some((i, done)) = expire_rx.recv().await {
            sessions[i].expire().await.expect("the session expires");
            let _ = done.send(());
        }
    });
    let mut lost_replies = 0;
    for task in tasks {
        lost_replies += task.await.expect("a contender");
    }
    expirer.await.expect("the expirer");
    assert_eq!(
        lost_replies,
        2 * CONTENDERS as u64,
        "every injected fault fired"
    );
    until_no_children(&*setup, &p(LOCK), "the lock's queue to be empty").await;
}

/// `try_lock` and `lock_timeout` give up without leaving a node; waiters
/// are served in arrival order, each having watched only its predecessor.
pub async fn try_lock_timeout_and_fifo_without_herd(h: &dyn Harness) {
    let observer = h.connect().await;
    let holder = Lock::new(FaultyCoordinator::connect(h).await, p(LOCK));
    let held = holder.lock().await.unwrap();
    let other = Lock::new(FaultyCoordinator::connect(h).await, p(LOCK));
    assert!(other.try_lock().await.unwrap().is_none());
    assert!(other
        .lock_timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        until_contenders(&*observer, &holder, 1).await,
        [held.node().clone()]
    );

    let (order_tx, mut order) = mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 1..=3 {
        let faulty = FaultyCoordinator::connect(h).await;
        let lock = Lock::new(faulty.clone(), p(LOCK));
        let order_tx = order_tx.clone();
        let task = tokio::spawn(async move {
            let guard = within("the lock", lock.lock()).await.unwrap();
            order_tx.send(i).unwrap();
            guard.release().await.unwrap();
        });
        until_contenders(&*observer, &holder, i + 1).await;
        waiters.push((faulty, task));
    }
    let queue = until_contenders(&*observer, &holder, 4).await;
    for (i, (faulty, _)) in waiters.iter().enumerate() {
        let (predecessor, own) = (&queue[i], &queue[i + 1]);
        faulty
            .until_watches(|w| w.contains(&(predecessor.clone(), WatchKind::Data)))
            .await;
        for (path, kind) in faulty.watches() {
            assert!(
                kind == WatchKind::Data && (&path == predecessor || &path == own),
                "waiter {} watched {path} ({kind:?}), not only its predecessor {predecessor}",
                i + 1
            );
        }
    }
    held.release().await.unwrap();
    let mut served = Vec::new();
    for _ in 0..3 {
        served.push(within("a waiter's turn", order.recv()).await.unwrap());
    }
    assert_eq!(served, [1, 2, 3], "first come, first served");
    for (_, task) in waiters {
        task.await.unwrap();
    }
    until_no_children(&*h.connect().await, &p(LOCK), "an empty queue").await;
}

/// A create whose reply is lost is found again by its unique id, for a
/// holder, a timed-out waiter and a cancelled one: no orphan contender.
pub async fn lost_create_reply_leaves_no_orphan(h: &dyn Harness) {
    let faulty = FaultyCoordinator::connect(h).await;
    faulty.lose_next_create_replies(1);
    let lock = Lock::new(faulty.clone(), p(LOCK));
    let held = within("the lock", lock.lock()).await.unwrap();
    assert_eq!(faulty.injected(), 1, "the reply was lost");
    assert_eq!(
        until_contenders(&*faulty, &lock, 1).await,
        [held.node().clone()]
    );

    let timed_out = FaultyCoordinator::connect(h).await;
    timed_out.lose_next_create_replies(1);
    let waiter = Lock::new(timed_out.clone(), p(LOCK));
    let got = waiter
        .lock_timeout(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(got.is_none());
    assert_eq!(timed_out.injected(), 1);
    assert_eq!(
        until_contenders(&*faulty, &lock, 1).await,
        [held.node().clone()]
    );

    let cancelled = FaultyCoordinator::connect(h).await;
    cancelled.lose_next_create_replies(1);
    let waiter = Lock::new(cancelled.clone(), p(LOCK));
    let task = tokio::spawn(async move { waiter.lock().await });
    until_contenders(&*faulty, &lock, 2).await;
    task.abort();
    assert_eq!(
        until_contenders(&*faulty, &lock, 1).await,
        [held.node().clone()]
    );

    held.release().await.unwrap();
    until_no_children(&*faulty, &p(LOCK), "an empty queue").await;
    let other = Lock::new(FaultyCoordinator::connect(h).await, p(LOCK));
    assert!(
        other.try_lock().await.unwrap().is_some(),
        "nothing blocks it"
    );
}

/// A waits behind the holder, B behind A... when B's session expires, C
/// reads the whole queue again and waits on the holder rather than take
/// the lock; B enters again at the back.
pub async fn waiter_rechecks_the_queue_when_its_predecessor_expires(h: &dyn Harness) {
    let observer = h.connect().await;
    let holder_lock = Lock::new(FaultyCoordinator::connect(h).await, p(LOCK));
    let held = holder_lock.lock().await.unwrap();
    let b_session = Arc::new(h.connect().await);
    let b_lock = Lock::new(b_session.coordinator.clone(), p(LOCK));
    let b = tokio::spawn(async move { b_lock.lock().await });
    until_contenders(&*observer, &holder_lock, 2).await;
    let c_faulty = FaultyCoordinator::connect(h).await;
    let c_lock = Lock::new(c_faulty.clone(), p(LOCK));
    let c = tokio::spawn(async move { c_lock.lock().await });
    let queue = until_contenders(&*observer, &holder_lock, 3).await;
    let (a_node, b_node, c_node) = (&queue[0], &queue[1], &queue[2]);
    c_faulty
        .until_watches(|w| w.contains(&(b_node.clone(), WatchKind::Data)))
        .await;

    b_session.expire().await.unwrap();
    within(
        "C to wait on the holder",
        c_faulty.until_watches(|w| w.contains(&(a_node.clone(), WatchKind::Data))),
    )
    .await;
    assert!(!c.is_finished(), "C took the lock while it was held");
    assert!(held.is_held());
    let queue = within("B to enter again", async {
        loop {
            let queue = until_contenders(&*observer, &holder_lock, 3).await;
            if &queue[1] == c_node && &queue[2] != b_node {
                return queue;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(&queue[0], a_node);

    let token = held.token();
    held.release().await.unwrap();
    let c_guard = within("C's turn", c).await.unwrap().unwrap();
    assert!(c_guard.token() > token);
    assert!(!b.is_finished(), "B waits behind C now");
    let c_token = c_guard.token();
    c_guard.release().await.unwrap();
    let b_guard = within("B's turn", b).await.unwrap().unwrap();
    assert!(b_guard.token() > c_token);
    b_guard.release().await.unwrap();
}

/// After the holder's session expires, its token is dead: the coordinator
/// refuses its ownership check, the next holder's token is larger and its
/// guarded writes go through.
pub async fn expiry_kills_the_token(h: &dyn Harness) {
    let a_session = h.connect().await;
    let fenced = p(FENCED);
    a_session
        .create(&fenced, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let a_lock = Lock::new(a_session.coordinator.clone(), p(LOCK));
    let a = a_lock.lock().await.unwrap();
    assert!(matches!(
        fenced_write(&*a_session, &a, &fenced).await,
        Fenced::Committed { .. }
    ));
    let b_session = h.connect().await;
    let b_lock = Lock::new(b_session.coordinator.clone(), p(LOCK));
    let b = tokio::spawn(async move { b_lock.lock().await });
    until_contenders(&*b_session, &a_lock, 2).await;

    a_session.expire().await.unwrap();
    let b = within("the waiter's turn", b).await.unwrap().unwrap();
    assert!(b.token() > a.token());
    assert!(!a.is_held());
    // Refused by the coordinator itself, not only by the guard's bookkeeping.
    let err = a_session
        .transaction(vec![
            a.ownership_check(),
            Op::Set {
                path: fenced.clone(),
                data: b"late".to_vec(),
                expected_version: None,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(err.operation_index(), Some(0), "{err}");
    match fenced_write(&*a_session, &a, &fenced).await {
        Fenced::Refused(Error::NotHeld {
            reason: NotHeldReason::Lost(_),
            ..
        }) => {}
        other => panic!("the dead token's write was not refused: {other:?}"),
    }
    assert!(matches!(
        fenced_write(&*b_session, &b, &fenced).await,
        Fenced::Committed { .. }
    ));
    let written = b_session.get(&fenced).await.unwrap().data;
    assert_eq!(written, b.token().to_string().into_bytes());
}

/// While the server is down the holder stops acting as one (its guarded
/// writes are refused without trying); when the session comes back with
/// the node intact, it holds again with the same token.
pub async fn holder_stops_owning_while_suspended(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "holder_stops_owning_while_suspended",
            "this harness cannot stop its server",
        );
    }
    let session = h.connect().await;
    let fenced = p(FENCED);
    session
        .create(&fenced, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let guard = Lock::new(session.coordinator.clone(), p(LOCK))
        .lock()
        .await
        .unwrap();
    let token = guard.token();
    let session_before = session.session_id();
    let mut state = guard.watch_state();
    h.stop_server().await;
    within(
        "the holder to stop owning",
        state.wait_for(|s| *s != HoldState::Held),
    )
    .await
    .unwrap();
    assert!(!guard.is_held());
    match guard.guarded_set(&fenced, b"suspended", None).await {
        Err(Error::NotHeld { .. }) => {}
        other => panic!("a suspended holder's write was not refused: {other:?}"),
    }
    h.start_server().await;
    if hold_after_outage(&*session, session_before, &guard).await {
        assert!(guard.is_held());
        assert_eq!(guard.token(), token);
        assert!(matches!(
            fenced_write(&*session, &guard, &fenced).await,
            Fenced::Committed { .. }
        ));
    } else {
        match guard.guarded_set(&fenced, b"expired", None).await {
            Err(Error::NotHeld { .. }) => {}
            other => panic!("an expired holder's write was not refused: {other:?}"),
        }
    }
}

/// After an outage, waits until the session is connected again and the
/// hold says what became of it: `true` when it is held again (the session
/// survived), `false` when it is lost for good because the session expired
/// meanwhile (a restart can outlast a short session).
pub(crate) async fn hold_after_outage(
    c: &dyn Coordinator,
    session_before: Option<u64>,
    guard: &LockGuard,
) -> bool {
    let mut events = c.session_events();
    within("the session to connect again", async {
        while c.session_state() != SessionState::Connected {
            events.next().await;
        }
    })
    .await;
    let mut state = guard.watch_state();
    if c.session_id() == session_before {
        within(
            "the hold to come back",
            state.wait_for(|s| *s == HoldState::Held),
        )
        .await
        .expect("the hold is followed");
        return true;
    }
    // The hold's task ends once it is lost; either way the state is final.
    let _ = within(
        "the hold to be lost",
        state.wait_for(|s| matches!(s, HoldState::Lost(_))),
    )
    .await;
    assert_eq!(
        guard.state(),
        HoldState::Lost(LossReason::SessionExpired),
        "a new session, yet the hold is not lost"
    );
    eprintln!("note: the session expired during the outage; the hold is lost for good");
    false
}

/// A holder in another process is killed with SIGKILL; a waiter here
/// takes over within the holder's session timeout plus one second.
pub async fn waiter_takes_over_when_the_holder_process_is_killed(
    h: &dyn Harness,
    peer_binary: &str,
) {
    let Some(peer_session) = h.peer_session() else {
        return skip(
            h.name(),
            "waiter_takes_over_when_the_holder_process_is_killed",
            "sessions cannot be shared between processes",
        );
    };
    let holder = Peer::hold(peer_binary, &peer_session, "lock", LOCK).await;
    let waiter_session: TestSession = h.connect().await;
    let lock = Lock::new(waiter_session.coordinator.clone(), p(LOCK));
    let waiting = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.lock().await })
    };
    until_contenders(&*waiter_session, &lock, 2).await;
    let peer_token = holder.token;
    let killed = Instant::now();
    holder.kill().await;
    let guard = within("the waiter's turn", waiting).await.unwrap().unwrap();
    let took = killed.elapsed();
    let bound = peer_session.session_timeout + peer_session.reaping_delay + Duration::from_secs(1);
    assert!(
        took <= bound,
        "the waiter took over {took:?} after the holder died (bound {bound:?})"
    );
    assert!(guard.token() > peer_token);
    guard.release().await.unwrap();
}
