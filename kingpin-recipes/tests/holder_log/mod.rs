//! The holders' log: each holder of the lock appends `<holder> <token>
//! <what>` entries (persistent-sequential nodes) through guarded
//! transactions, so an entry exists only if its writer still held when the
//! coordinator committed it, and the sequence numbers are the coordinator's
//! commit order. Read back, the tokens must never go down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath, Op, OpResult};
use kingpin_recipes::{Error, HoldState, Lock, LockGuard, NotHeldReason};

/// How often the holders' writer loops write: pacing, not synchronisation.
const WRITE_INTERVAL: Duration = Duration::from_millis(25);

pub fn path(s: &str) -> NodePath {
    NodePath::parse(s).unwrap()
}

pub const LOCK: &str = "/locks/job";
pub const LOG: &str = "/log";

/// The holders' log: `<holder> <token> <what>` entries in the coordinator's
/// commit order, each written only while its writer held the lock.
pub async fn record(guard: &LockGuard, who: &str, what: &str) -> Result<u64, Error> {
    let results = guard
        .guarded_transaction(vec![log_entry(guard, who, what)])
        .await?;
    match results.first() {
        Some(OpResult::Created(created)) => Ok(sequence_of(created)),
        other => panic!("a log append returned {other:?}"),
    }
}

pub fn log_entry(guard: &LockGuard, who: &str, what: &str) -> Op {
    Op::Create {
        path: path(&format!("{LOG}/entry-")),
        data: format!("{who} {} {what}", guard.token()).into_bytes(),
        mode: CreateMode::PersistentSequential,
    }
}

pub fn sequence_of(node: &NodePath) -> u64 {
    let name = node.name();
    name[name.len() - 10..].parse().unwrap()
}

/// One log entry, read back.
#[derive(Debug)]
pub struct Entry {
    pub sequence: u64,
    pub who: String,
    pub token: u64,
    pub what: String,
}

/// The whole log in sequence order, and every place where the token went
/// down (an older holder's entry after a newer holder's) or a new holder's
/// first entry is not its acquisition.
pub async fn read_log(coordinator: &dyn Coordinator) -> (Vec<Entry>, Vec<String>) {
    let mut names = coordinator.children(&path(LOG)).await.unwrap();
    names.sort();
    let mut entries = Vec::new();
    for name in names {
        let node = path(LOG).join(&name).unwrap();
        let data = String::from_utf8(coordinator.get(&node).await.unwrap().data).unwrap();
        let mut fields = data.splitn(3, ' ');
        let (who, token, what) = (fields.next(), fields.next(), fields.next());
        entries.push(Entry {
            sequence: sequence_of(&node),
            who: who.unwrap().to_owned(),
            token: token.unwrap().parse().unwrap(),
            what: what.unwrap_or_default().to_owned(),
        });
    }
    let mut overlaps = Vec::new();
    for pair in entries.windows(2) {
        if pair[1].token < pair[0].token {
            overlaps.push(format!("{:?} after {:?}", pair[1], pair[0]));
        } else if pair[1].token > pair[0].token && pair[1].what != "acquired" {
            overlaps.push(format!("{:?} before its acquisition", pair[1]));
        }
    }
    (entries, overlaps)
}

/// The first entry `who` wrote, by sequence.
pub fn first_entry_of<'a>(entries: &'a [Entry], who: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.who == who)
        .unwrap_or_else(|| panic!("{who} wrote nothing: {entries:?}"))
}

/// How guarded writes were refused, by reason.
#[derive(Debug, Default)]
pub struct Refusals {
    pub suspended: usize,
    pub lost: usize,
    pub coordinator: Vec<ErrorKind>,
}

impl Refusals {
    pub fn count(&mut self, error: &Error) {
        match error {
            Error::NotHeld {
                reason: NotHeldReason::Suspended,
                ..
            } => self.suspended += 1,
            Error::NotHeld { .. } => self.lost += 1,
            other => self.coordinator.push(other.kind()),
        }
    }

    pub fn total(&self) -> usize {
        self.suspended + self.lost + self.coordinator.len()
    }
}

/// A holder's loop appending to the log every [`WRITE_INTERVAL`] until
/// `stop` or until its hold is lost: the sequences of the appends it was
/// told succeeded, and its refusals.
pub async fn write_until(
    guard: Arc<LockGuard>,
    who: &'static str,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, Refusals) {
    let mut accepted = Vec::new();
    let mut refusals = Refusals::default();
    let mut k = 0;
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        match record(&guard, who, &format!("write {k}")).await {
            Ok(sequence) => accepted.push(sequence),
            Err(e) => refusals.count(&e),
        }
        if matches!(guard.state(), HoldState::Lost(_)) {
            break;
        }
        tokio::time::sleep(WRITE_INTERVAL).await;
    }
    (accepted, refusals)
}

/// Appends like [`record`], waiting out what a careful holder waits out: a
/// suspended session (until its hold is back) and a retryable error (the
/// append may then be in the log twice, which the check allows). Panics
/// when the hold is lost. Returns the sequence and the refusals met.
pub async fn record_when_held(guard: &LockGuard, who: &str, what: &str) -> (u64, Refusals) {
    let mut refusals = Refusals::default();
    loop {
        match record(guard, who, what).await {
            Ok(sequence) => return (sequence, refusals),
            Err(e) => {
                let suspended = matches!(
                    e,
                    Error::NotHeld {
                        reason: NotHeldReason::Suspended,
                        ..
                    }
                );
                assert!(suspended || e.is_retryable(), "{who} lost its hold: {e}");
                refusals.count(&e);
                let mut states = guard.watch_state();
                let back = states.wait_for(|s| *s != HoldState::Suspended);
                tokio::time::timeout(Duration::from_secs(60), back)
                    .await
                    .unwrap_or_else(|_| panic!("{who}'s hold stayed suspended"))
                    .unwrap_or_else(|_| panic!("{who}'s hold task ended"));
            }
        }
    }
}

/// Takes the lock for `who` and logs the acquisition.
pub async fn acquire(coordinator: Arc<dyn Coordinator>, who: &str) -> LockGuard {
    let guard = Lock::new(coordinator, path(LOCK))
        .with_identifier(who)
        .lock()
        .await
        .unwrap();
    record_when_held(&guard, who, "acquired").await;
    guard
}

/// Another client waiting for the lock from the start, logging its
/// acquisition as soon as it holds: how long after `since` it held.
pub fn waiter(coordinator: Arc<dyn Coordinator>) -> tokio::task::JoinHandle<(LockGuard, Instant)> {
    tokio::spawn(async move {
        let guard = acquire(coordinator, "b").await;
        (guard, Instant::now())
    })
}

pub async fn create_log(coordinator: &dyn Coordinator) {
    coordinator
        .create(&path(LOG), b"", CreateMode::Persistent)
        .await
        .unwrap();
}
