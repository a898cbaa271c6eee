//! What a lock, a semaphore lease or a leadership is once acquired: a
//! contender node, a fencing token, and a state that follows the session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{
    Backoff, Coordinator, ErrorKind, NodePath, Op, OpResult, SessionState, WatchKind, WatchStream,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, LossReason, NotHeldReason, Result};

/// How often a hold is checked even when no event said anything changed:
/// a safety net under the session and node events.
const SAFETY_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// How many times a node is tried to be deleted in the background (after a
/// drop, or a release that failed) before it is left to the session.
const BACKGROUND_DELETE_ATTEMPTS: u32 = 20;

/// A number that grows with every new holder of a lock (or lease, or
/// leadership), to hand to the resources the holder writes to.
///
/// A holder can be paused (GC, swap, a stopped VM) past its session's end
/// without knowing it, while another holder takes over; a resource that
/// remembers the largest token it has seen and refuses smaller ones keeps
/// the paused holder's late writes out. For writes to the coordinator
/// itself, [`LockGuard::guarded_transaction`] does better: it checks
/// ownership in the same transaction.
///
/// The token is the coordinator revision at which the holder's contender
/// node was created (ZooKeeper's czxid, etcd's create revision, SQLite's
/// revision). A later holder's node was created later (contenders are
/// served in creation order), so its token is larger, and unlike the
/// node's sequence number the revision keeps growing when the lock's node
/// is deleted and created again. Tokens compare only between holders of
/// the same lock on the same cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// A token from its number (as read back from a resource).
    pub fn new(value: u64) -> Self {
        FencingToken(value)
    }

    /// The number.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a holder may act as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldState {
    /// Held: the session is connected and the contender node is there.
    Held,
    /// The connection is lost. The session, and so the hold, may still be
    /// alive, but another contender may take over as soon as the server
    /// expires it, so a careful holder stops acting as one now. Back to
    /// `Held` when the session reconnects with the node intact.
    Suspended,
    /// Over for good.
    Lost(LossReason),
}

impl HoldState {
    fn not_held_reason(self) -> Option<NotHeldReason> {
        match self {
            HoldState::Held => None,
            HoldState::Suspended => Some(NotHeldReason::Suspended),
            HoldState::Lost(reason) => Some(NotHeldReason::Lost(reason)),
        }
    }
}

/// A held lock (or read lock, or semaphore lease): the contender node that
/// holds it, its [`FencingToken`], and its [`HoldState`], which follows the
/// coordinator's session from a task of its own.
///
/// Released by [`release`](Self::release), or, when dropped, by a
/// background delete of the node (retried while the coordinator is
/// unreachable; the node also goes when the session ends).
///
/// # What it guarantees
///
/// * [`is_held`](Self::is_held) turns false as soon as the coordinator
///   reports the session suspended (connection lost), before the server
///   can expire the session and let another contender in; it turns true
///   again if the session reconnects with the node intact.
/// * [`guarded_transaction`](Self::guarded_transaction) commits only if the
///   contender node is still there, checked by the coordinator in the same
///   transaction: after the session expired, or the node was deleted, it
///   is refused however late the holder learns of it.
///
/// # What it does not
///
/// * A holder learns of a lost session only as fast as its client does.
///   Between the server expiring the session and the client hearing of it
///   (an etcd lease revoked while the keep-alive is between beats, a
///   process paused), `is_held` can still say true while another
///   contender holds. Anything written outside the coordinator must be
///   fenced with [`token`](Self::token); writes to the coordinator should
///   go through `guarded_transaction`.
#[derive(Debug)]
pub struct LockGuard {
    coordinator: Arc<dyn Coordinator>,
    node: NodePath,
    token: FencingToken,
    session: u64,
    state: watch::Receiver<HoldState>,
    tracker: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// Starts following a contender node that was just found to hold.
    pub(crate) fn start(
        coordinator: Arc<dyn Coordinator>,
        node: NodePath,
        token: FencingToken,
        session: u64,
    ) -> Self {
        let (state_tx, state) = watch::channel(HoldState::Held);
        let tracker = tokio::spawn(track(coordinator.clone(), node.clone(), session, state_tx));
        LockGuard {
            coordinator,
            node,
            token,
            session,
            state,
            tracker: Some(tracker),
        }
    }

    /// The fencing token of this hold.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// The contender node that holds.
    pub fn node(&self) -> &NodePath {
        &self.node
    }

    /// Whether this holder may act as one now: the node is held, and the
    /// session is connected and the one that created the node.
    pub fn is_held(&self) -> bool {
        self.not_held_reason().is_none()
    }

    /// The state now.
    pub fn state(&self) -> HoldState {
        match self.not_held_reason() {
            None => HoldState::Held,
            Some(NotHeldReason::Suspended) => HoldState::Suspended,
            Some(NotHeldReason::Lost(reason)) => HoldState::Lost(reason),
        }
    }

    /// The state as the hold's task follows it, to await changes.
    pub fn watch_state(&self) -> watch::Receiver<HoldState> {
        self.state.clone()
    }

    /// Completes as soon as this holder may not act as one (suspended or
    /// lost), with the reason.
    pub async fn until_not_held(&self) -> NotHeldReason {
        let mut state = self.state.clone();
        let seen = state.wait_for(|s| *s != HoldState::Held).await.map(|s| *s);
        match seen {
            Ok(s) => s.not_held_reason().unwrap_or(NotHeldReason::Suspended),
            // The task ended without a verdict: only when it was stopped.
            Err(_) => NotHeldReason::Lost(LossReason::Released),
        }
    }

    /// The operation that fails a transaction unless this hold's node is
    /// still there: what [`guarded_transaction`](Self::guarded_transaction)
    /// puts first, for callers that build their own transactions.
    pub fn ownership_check(&self) -> Op {
        Op::Check {
            path: self.node.clone(),
            version: 0,
        }
    }

    /// Applies `ops` all or nothing, only if this hold is still held: the
    /// ownership check is the first operation of the same transaction.
    /// Returns the results of `ops` (without the check's).
    ///
    /// # Errors
    ///
    /// [`Error::NotHeld`] without any I/O when the session is suspended or
    /// the hold is known to be lost, and when the coordinator finds the
    /// contender node gone. Otherwise the coordinator's error, whose
    /// operation index counts in `ops`.
    pub async fn guarded_transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if let Some(reason) = self.not_held_reason() {
            return Err(self.not_held(reason));
        }
        let mut guarded = Vec::with_capacity(ops.len() + 1);
        guarded.push(self.ownership_check());
        guarded.extend(ops);
        match self.coordinator.transaction(guarded).await {
            Ok(mut results) => {
                results.remove(0);
                Ok(results)
            }
            Err(e)
                if e.operation_index() == Some(0)
                    && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::BadVersion) =>
            {
                let reason = if self.coordinator.session_id() == Some(self.session) {
                    LossReason::NodeDeleted
                } else {
                    LossReason::SessionExpired
                };
                Err(self.not_held(NotHeldReason::Lost(reason)))
            }
            Err(e) => Err(match e.operation_index() {
                Some(index) => e.at_operation(index.saturating_sub(1)),
                None => e,
            }
            .into()),
        }
    }

    /// Sets `path` to `data` (at `expected_version`, when given) only if
    /// this hold is still held. See
    /// [`guarded_transaction`](Self::guarded_transaction).
    ///
    /// # Errors
    ///
    /// As `guarded_transaction`.
    pub async fn guarded_set(
        &self,
        path: &NodePath,
        data: &[u8],
        expected_version: Option<u64>,
    ) -> Result<kingpin_api::Stat> {
        let results = self
            .guarded_transaction(vec![Op::Set {
                path: path.clone(),
                data: data.to_vec(),
                expected_version,
            }])
            .await?;
        match results.into_iter().next() {
            Some(result) => Ok(result.into_set()?),
            None => Err(kingpin_api::Error::new(
                ErrorKind::Backend,
                "a one-operation transaction returned no result",
            )
            .into()),
        }
    }

    /// Releases the hold: deletes the contender node, so the next
    /// contender takes over.
    ///
    /// # Errors
    ///
    /// The coordinator's, when the delete fails; it is then retried in the
    /// background (and the node goes when the session ends anyway).
    pub async fn release(mut self) -> Result<()> {
        self.stop_tracking();
        match self.coordinator.delete(&self.node, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                delete_in_background(self.coordinator.clone(), self.node.clone());
                Err(e.into())
            }
            _ => Ok(()),
        }
    }

    fn stop_tracking(&mut self) {
        if let Some(tracker) = self.tracker.take() {
            tracker.abort();
        }
    }

    fn not_held_reason(&self) -> Option<NotHeldReason> {
        if self.tracker.is_none() {
            return Some(NotHeldReason::Lost(LossReason::Released));
        }
        if self.coordinator.session_id() != Some(self.session) {
            return Some(NotHeldReason::Lost(LossReason::SessionExpired));
        }
        match self.coordinator.session_state() {
            SessionState::Connected => self.state.borrow().not_held_reason(),
            SessionState::Suspended => Some(
                self.state
                    .borrow()
                    .not_held_reason()
                    .unwrap_or(NotHeldReason::Suspended),
            ),
            SessionState::Expired | SessionState::Closed => {
                Some(NotHeldReason::Lost(LossReason::SessionExpired))
            }
        }
    }

    fn not_held(&self, reason: NotHeldReason) -> Error {
        Error::NotHeld {
            what: self.node.clone(),
            reason,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.tracker.is_some() {
            self.stop_tracking();
            delete_in_background(self.coordinator.clone(), self.node.clone());
        }
    }
}

/// Follows a hold until it is lost or nobody looks any more.
async fn track(
    coordinator: Arc<dyn Coordinator>,
    node: NodePath,
    session: u64,
    state: watch::Sender<HoldState>,
) {
    // Subscribed before the first look, so no change after it is missed.
    let mut sessions = coordinator.session_events();
    let mut node_watch: Option<WatchStream> = None;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        if node_watch.is_none() {
            node_watch = coordinator.watch(&node, WatchKind::Data).await.ok();
        }
        let (now, certain) = evaluate(&*coordinator, &node, session).await;
        state.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
        if let HoldState::Lost(reason) = now {
            tracing::info!(%node, %reason, "hold lost");
            return;
        }
        let recheck = if certain && node_watch.is_some() {
            backoff.reset();
            SAFETY_CHECK_INTERVAL
        } else {
            backoff.next_delay()
        };
        tokio::select! {
            event = sessions.next() => if event.is_none() {
                // The coordinator is closed, and its session with it.
                state.send_replace(HoldState::Lost(LossReason::SessionExpired));
                return;
            },
            ended = next_event(&mut node_watch) => if ended {
                node_watch = None;
            },
            () = tokio::time::sleep(recheck) => {}
            () = state.closed() => return,
        }
    }
}

/// The hold's state as far as can be told now, and whether that is certain
/// (a failed read leaves it in doubt: suspended until read again).
async fn evaluate(
    coordinator: &dyn Coordinator,
    node: &NodePath,
    session: u64,
) -> (HoldState, bool) {
    let lost = |reason| (HoldState::Lost(reason), true);
    if coordinator.session_id() != Some(session) {
        return lost(LossReason::SessionExpired);
    }
    match coordinator.session_state() {
        SessionState::Connected => {}
        SessionState::Suspended => return (HoldState::Suspended, true),
        SessionState::Expired | SessionState::Closed => return lost(LossReason::SessionExpired),
    }
    match coordinator.exists(node).await {
        Ok(Some(stat)) if stat.ephemeral_owner == Some(session) => (HoldState::Held, true),
        Ok(_) if coordinator.session_id() != Some(session) => lost(LossReason::SessionExpired),
        Ok(_) => lost(LossReason::NodeDeleted),
        Err(e) if e.kind() == ErrorKind::SessionExpired => lost(LossReason::SessionExpired),
        Err(e) => {
            tracing::debug!(%node, error = %e, "cannot check the hold; in doubt");
            (HoldState::Suspended, false)
        }
    }
}

/// Waits for the next event of a watch; `true` when the stream ended.
async fn next_event(watch: &mut Option<WatchStream>) -> bool {
    match watch {
        Some(stream) => stream.next().await.is_none(),
        None => std::future::pending().await,
    }
}

/// Deletes `path` from a task of its own, retrying while the coordinator is
/// unreachable, for drops (which cannot wait) and failed releases.
pub(crate) fn delete_in_background(coordinator: Arc<dyn Coordinator>, path: NodePath) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut backoff = Backoff::default();
        for _ in 0..BACKGROUND_DELETE_ATTEMPTS {
            match coordinator.delete(&path, None).await {
                Err(e)
                    if e.is_retryable() && coordinator.session_state() != SessionState::Closed =>
                {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    tracing::warn!(node = %path, error = %e, "cannot delete a contender node");
                    return;
                }
                _ => return,
            }
        }
        tracing::warn!(node = %path, "gave up deleting a contender node; it goes with the session");
    });
}
