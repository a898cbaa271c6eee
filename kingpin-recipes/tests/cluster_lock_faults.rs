//! The lock's safety on real 3-node clusters (ZooKeeper and etcd) under
//! faults: a held lock survives a leader change on the same session; after
//! the holder's session expires in a long partition, or behind a member
//! frozen past the session timeout (a GC-pause stand-in), another client
//! takes the lock and the old holder's guarded writes are refused, never
//! a false success.
//!
//! "No two holders at any moment" is judged by the coordinator's own order,
//! not by clocks: every holder appends to a log (persistent-sequential
//! nodes) with guarded transactions, so an entry exists only if its holder
//! still held when the coordinator committed it. Read back in sequence
//! order, the fencing tokens must never go down: an entry of an older
//! holder after a newer holder's would be two holders at one moment. Each
//! case prints what it observed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod holder_log;

use futures::StreamExt;
use kingpin_api::{Coordinator, SessionState, WatchKind};
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind};
use kingpin_conformance_tests::unique_namespace;
use kingpin_recipes::{HoldState, Lock, LockGuard};

use holder_log::{
    acquire, create_log, first_entry_of, log_entry, path, read_log, record, record_when_held,
    waiter, write_until, Entry, Refusals, LOCK,
};

/// Sessions expire 4 s after their client goes silent.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// Generous: a failing wait means the behaviour is missing, not slow.
const WAIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// One test's namespace on a cluster, with short sessions.
struct Site {
    namespace: String,
    options: String,
}

impl Site {
    fn new(kind: ClusterKind) -> Site {
        let options = match kind {
            ClusterKind::ZooKeeper => format!(
                "session_timeout={}s&connection_timeout=1s",
                SESSION_TIMEOUT.as_secs()
            ),
            ClusterKind::Etcd => format!("lease_ttl={}s", SESSION_TIMEOUT.as_secs()),
        };
        Site {
            namespace: unique_namespace(),
            options,
        }
    }

    /// The URL of the members in `members` (every member when empty).
    fn url(&self, cluster: &Cluster, members: &[usize]) -> String {
        if members.is_empty() {
            cluster.url(&self.namespace, &self.options)
        } else {
            cluster.url_for(members, &self.namespace, &self.options)
        }
    }

    /// A session on the members in `members` (every member when empty).
    async fn session(&self, cluster: &Cluster, members: &[usize]) -> Arc<dyn Coordinator> {
        kingpin::open_coordinator(&self.url(cluster, members))
            .await
            .unwrap()
    }
}

/// Every state a hold went through, and when its task published it.
#[derive(Clone)]
struct StateLog(Arc<Mutex<Vec<(HoldState, Instant)>>>);

impl StateLog {
    /// Follows `guard`'s state from a task of its own.
    fn follow(guard: &LockGuard) -> StateLog {
        let mut states = guard.watch_state();
        let first = *states.borrow_and_update();
        let log = StateLog(Arc::new(Mutex::new(vec![(first, Instant::now())])));
        let out = log.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let now = *states.borrow_and_update();
                log.0.lock().unwrap().push((now, Instant::now()));
            }
        });
        out
    }

    fn states(&self) -> Vec<HoldState> {
        self.0.lock().unwrap().iter().map(|(s, _)| *s).collect()
    }

    /// How long after `since` the holder first stopped acting as one.
    fn not_held_after(&self, since: Instant) -> Option<Duration> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(s, at)| *s != HoldState::Held && *at >= since)
            .map(|(_, at)| at.duration_since(since))
    }
}

/// Waits until the hold's state satisfies `condition`.
async fn until_state(guard: &LockGuard, what: &str, condition: impl FnMut(&HoldState) -> bool) {
    let mut states = guard.watch_state();
    within(what, states.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("the hold's task ended before {what}"));
}

/// Waits until `coordinator` is connected (on whatever session).
async fn until_connected(coordinator: &dyn Coordinator) {
    let mut events = coordinator.session_events();
    within("a connected session", async {
        while coordinator.session_state() != SessionState::Connected {
            events.next().await;
        }
    })
    .await;
}

/// A write straight to the coordinator, bypassing everything the old
/// holder's guard knows: the coordinator alone must refuse it, because the
/// ownership check finds the expired session's node gone.
async fn raw_stale_write(coordinator: &dyn Coordinator, guard: &LockGuard) -> kingpin_api::Error {
    until_connected(coordinator).await;
    match coordinator
        .transaction(vec![
            guard.ownership_check(),
            log_entry(guard, "stale", "raw write"),
        ])
        .await
    {
        Ok(results) => panic!("a stale holder's raw write was accepted: {results:?}"),
        Err(e) => e,
    }
}

/// Waits until the lock's queue has `n` contenders.
async fn until_contenders(coordinator: Arc<dyn Coordinator>, n: usize) {
    let mut changes = coordinator
        .watch(&path(LOCK), WatchKind::Children)
        .await
        .unwrap();
    let lock = Lock::new(coordinator, path(LOCK));
    within("the waiter to queue", async {
        while lock.contenders().await.unwrap().len() < n {
            changes.next().await;
        }
    })
    .await;
}

/// (a) The leader is killed while a lock is held and another client waits:
/// the holder keeps the same session and node, the waiter does not get the
/// lock, and the holder's guarded writes are accepted again once its client
/// is connected; after the release the waiter takes over.
async fn held_lock_survives_a_leader_change(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "held_lock_survives_leader_change").await
    else {
        return;
    };
    let site = Site::new(kind);
    let holder_session = site.session(&cluster, &[]).await;
    create_log(&*holder_session).await;
    let guard = acquire(holder_session.clone(), "a").await;
    let session = holder_session.session_id();
    let states = StateLog::follow(&guard);
    let observer = site.session(&cluster, &[]).await;
    let waiting = waiter(site.session(&cluster, &[]).await);
    until_contenders(observer.clone(), 2).await;

    let leader = cluster.leader().await.unwrap();
    let killed = Instant::now();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    let election = killed.elapsed();
    let (_, refusals) = record_when_held(&guard, "a", "after the election").await;
    let written_again = killed.elapsed();
    assert_eq!(holder_session.session_id(), session, "the same session");
    assert!(guard.is_held());
    // Read through the survivors: an etcd client that names the dead
    // member keeps sending some requests there, which fail retryably.
    let survivors: Vec<usize> = (0..cluster.size()).filter(|&i| i != leader).collect();
    let observer = site.session(&cluster, &survivors).await;
    let node = observer.exists(guard.node()).await.unwrap();
    assert_eq!(node.and_then(|s| s.ephemeral_owner), session);
    let queue = Lock::new(observer.clone(), path(LOCK))
        .contenders()
        .await
        .unwrap();
    assert_eq!(queue.len(), 2, "the holder and the waiter, nobody else");
    assert_eq!(&queue[0].node, guard.node(), "the holder is still first");
    assert!(!waiting.is_finished(), "nobody else acquired");

    let token = guard.token();
    record_when_held(&guard, "a", "releasing").await;
    let released = Instant::now();
    guard.release().await.unwrap();
    let (next_guard, acquired) = within("the waiter to take over", waiting).await.unwrap();
    let handover = acquired.duration_since(released);
    assert!(next_guard.token() > token);
    record_when_held(&next_guard, "b", "releasing").await;
    next_guard.release().await.unwrap();
    let (entries, overlaps) = read_log(&*observer).await;
    let stopped = states.not_held_after(killed);
    let states = states.states();
    println!(
        "{kind:?}: lock held through a leader change (m{} killed, m{} led after {election:?}); \
         holder states {states:?} (suspended {stopped:?} after the kill), same session, guarded writes accepted again {written_again:?} \
         after the kill ({} refused meanwhile: {refusals:?}); the waiter did not acquire; after \
         the release it held in {handover:?}; log of {} entries, {} overlaps",
        leader + 1,
        next + 1,
        refusals.total(),
        entries.len(),
        overlaps.len()
    );
    assert!(
        !states.iter().any(|s| matches!(s, HoldState::Lost(_))),
        "never lost: {states:?}"
    );
    assert!(overlaps.is_empty(), "two holders at once: {overlaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_held_lock_survives_a_leader_change() {
    held_lock_survives_a_leader_change(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_held_lock_survives_a_leader_change() {
    held_lock_survives_a_leader_change(ClusterKind::Etcd).await;
}

fn is_lost(state: &HoldState) -> bool {
    matches!(state, HoldState::Lost(_))
}

/// (b) The holder's client is cut off from every member for longer than
/// the session timeout: the session expires, the waiter takes the lock, and
/// every write of the old holder is refused: in flight at the cut, while
/// cut off, after the heal through its guard, and straight to the
/// coordinator with the ownership check.
async fn expired_holder_is_fenced_after_a_long_partition(kind: ClusterKind) {
    let Some(cluster) = Cluster::for_test(kind, 3, "expired_holder_is_fenced").await else {
        return;
    };
    let site = Site::new(kind);
    let observer = site.session(&cluster, &[]).await;
    create_log(&*observer).await;
    let client = ClientRuntime::new(&cluster.add_client("holder").unwrap()).unwrap();
    let url = site.url(&cluster, &[]);
    let (holder_session, guard) = client
        .run(async move {
            let session = kingpin::open_coordinator(&url).await.unwrap();
            let guard = acquire(session.clone(), "a").await;
            (session, Arc::new(guard))
        })
        .await;
    let states = StateLog::follow(&guard);
    let waiting = waiter(site.session(&cluster, &[]).await);
    until_contenders(observer.clone(), 2).await;
    let append = |what: &'static str| {
        let guard = guard.clone();
        async move { record(&guard, "a", what).await }
    };
    client.run(append("before the cut")).await.unwrap();

    for m in 0..cluster.size() {
        cluster
            .network()
            .block(client.node().addr, cluster.member_addr(m))
            .unwrap();
    }
    let cut = Instant::now();
    let in_flight = client.spawn(append("in flight at the cut"));
    let (next_guard, acquired) = within("the waiter to take over", waiting).await.unwrap();
    let reacquired = acquired.duration_since(cut);
    assert!(next_guard.token() > guard.token());
    assert_eq!(
        observer.exists(guard.node()).await.unwrap(),
        None,
        "the expired holder's node is gone when the next one holds"
    );
    let mut refusals = Refusals::default();
    let cut_off = client.run(append("while cut off")).await;
    refusals.count(&cut_off.expect_err("a write while cut off after the expiry is refused"));
    record_when_held(&next_guard, "b", "while a is cut off").await;

    cluster.heal().unwrap();
    let healed = Instant::now();
    let in_flight = within("the write in flight at the cut", in_flight)
        .await
        .unwrap();
    refusals.count(&in_flight.expect_err("the write in flight at the cut is refused"));
    until_state(&guard, "the old holder to learn it lost", is_lost).await;
    let learned = healed.elapsed();
    let after = client.run(append("after the heal")).await;
    refusals.count(&after.expect_err("a write after the heal is refused"));
    let raw = {
        let (session, guard) = (holder_session.clone(), guard.clone());
        client
            .run(async move { raw_stale_write(&*session, &guard).await })
            .await
    };
    record_when_held(&next_guard, "b", "releasing").await;
    next_guard.release().await.unwrap();
    let (entries, overlaps) = read_log(&*observer).await;
    let b_first = first_entry_of(&entries, "b").sequence;
    let late: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.who != "b" && e.sequence > b_first)
        .collect();
    let stopped = states.not_held_after(cut);
    let states = states.states();
    println!(
        "{kind:?}: holder cut off from every member; it stopped acting as holder {stopped:?} \
         after the cut, the waiter held {reacquired:?} after (session timeout {SESSION_TIMEOUT:?}); the old holder's writes refused: {refusals:?}; \
         after the heal it knew it lost in {learned:?} (states {states:?}); a raw write with \
         the ownership check was refused by the coordinator ({}: {raw}); log of {} entries, {} \
         overlaps, {} old-holder entries after the new holder's first",
        raw.kind(),
        entries.len(),
        overlaps.len(),
        late.len()
    );
    assert!(overlaps.is_empty(), "two holders at once: {overlaps:?}");
    assert!(late.is_empty(), "stale writes accepted: {late:?}");
    assert!(
        stopped.is_some_and(|s| s < reacquired),
        "the old holder stops acting as one before the next one holds"
    );
    assert_eq!(
        raw.operation_index(),
        Some(0),
        "the ownership check refused it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_expired_holder_is_fenced_after_a_long_partition() {
    expired_holder_is_fenced_after_a_long_partition(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_expired_holder_is_fenced_after_a_long_partition() {
    expired_holder_is_fenced_after_a_long_partition(ClusterKind::Etcd).await;
}

/// (c) The holder's client talks only to the leader, which freezes (a GC
/// pause) past the session timeout while the holder keeps writing. The
/// majority elects another leader, the holder's session expires, a waiter
/// on the majority takes the lock and writes; when the old leader wakes
/// up, nothing the old holder sent is accepted after the new holder's
/// acquisition, and there were never two holders.
async fn paused_member_allows_no_two_holders(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "paused_member_lock").await else {
        return;
    };
    let site = Site::new(kind);
    let leader = cluster.leader().await.unwrap();
    let majority: Vec<usize> = (0..cluster.size()).filter(|&i| i != leader).collect();
    let observer = site.session(&cluster, &majority).await;
    create_log(&*observer).await;
    let holder_session = site.session(&cluster, &[leader]).await;
    let guard = Arc::new(acquire(holder_session.clone(), "a").await);
    let states = StateLog::follow(&guard);
    let waiting = waiter(site.session(&cluster, &majority).await);
    until_contenders(observer.clone(), 2).await;
    let mut accepted_before = Vec::new();
    for k in 1..=3 {
        accepted_before.push(
            record_when_held(&guard, "a", &format!("before {k}"))
                .await
                .0,
        );
    }
    let stop_a = Arc::new(AtomicBool::new(false));
    let writer_a = tokio::spawn(write_until(guard.clone(), "a", stop_a.clone()));

    cluster.pause(leader).unwrap();
    let paused = Instant::now();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    let (next_guard, acquired) = within("the waiter to take over", waiting).await.unwrap();
    let reacquired = acquired.duration_since(paused);
    assert_eq!(
        observer.exists(guard.node()).await.unwrap(),
        None,
        "the expired holder's node is gone when the next one holds"
    );
    let next_guard = Arc::new(next_guard);
    let stop_b = Arc::new(AtomicBool::new(false));
    let writer_b = tokio::spawn(write_until(next_guard.clone(), "b", stop_b.clone()));
    cluster.resume(leader).unwrap();
    let pause = paused.elapsed();
    let resumed = Instant::now();
    until_state(&guard, "the old holder to learn it lost", is_lost).await;
    let learned = resumed.elapsed();
    stop_a.store(true, Ordering::SeqCst);
    let (a_accepted, a_refusals) = within("the old holder's writer", writer_a).await.unwrap();
    let raw = raw_stale_write(&*holder_session, &guard).await;
    stop_b.store(true, Ordering::SeqCst);
    let (b_accepted, b_refusals) = within("the new holder's writer", writer_b).await.unwrap();
    let (entries, overlaps) = read_log(&*observer).await;
    let b_first = first_entry_of(&entries, "b").sequence;
    let late: Vec<&u64> = accepted_before
        .iter()
        .chain(&a_accepted)
        .filter(|&&s| s > b_first)
        .collect();
    let stopped = states.not_held_after(paused);
    let states = states.states();
    println!(
        "{kind:?}: leader m{} (the holder's only member) paused {pause:?}; m{} led; the holder \
         stopped acting as one {stopped:?} after the pause began, the waiter held {reacquired:?} after (session timeout {SESSION_TIMEOUT:?}); the old \
         holder had {} writes accepted before the pause and {} by its writer loop, all before \
         the new holder's first entry, and {} refused ({a_refusals:?}); after the resume it knew it lost in {learned:?} (states {states:?}); a \
         raw write with the ownership check was refused ({}: {raw}); the new holder wrote {} \
         ({} refused); log of {} entries, {} overlaps",
        leader + 1,
        next + 1,
        accepted_before.len(),
        a_accepted.len(),
        a_refusals.total(),
        raw.kind(),
        b_accepted.len(),
        b_refusals.total(),
        entries.len(),
        overlaps.len()
    );
    assert!(pause > SESSION_TIMEOUT, "paused past the session timeout");
    assert!(
        stopped.is_some_and(|s| s < reacquired),
        "the old holder stops acting as one before the next one holds"
    );
    assert!(overlaps.is_empty(), "two holders at once: {overlaps:?}");
    assert!(
        late.is_empty(),
        "stale writes accepted after {b_first}: {late:?}"
    );
    assert!(!b_accepted.is_empty(), "the new holder wrote");
    assert_eq!(
        raw.operation_index(),
        Some(0),
        "the ownership check refused it"
    );
    if let Ok(next_guard) = Arc::try_unwrap(next_guard) {
        next_guard.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_paused_member_allows_no_two_holders() {
    paused_member_allows_no_two_holders(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_member_allows_no_two_holders() {
    paused_member_allows_no_two_holders(ClusterKind::Etcd).await;
}
