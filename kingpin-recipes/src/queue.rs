//! The contender queue every lock-like recipe shares: enter it (safely
//! across lost replies), wait for a turn without a herd, and leave nothing
//! behind on timeout or cancellation.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{
    Backoff, Coordinator, CreateMode, ErrorKind, NodePath, SessionEvent, SessionState, WatchKind,
    WatchStream,
};
use tokio::time::Instant;

use crate::contender::{queue_order, unique_id, Entry};
use crate::error::Result;
use crate::hold::{FencingToken, LockGuard};

/// How long to wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: hold now or give up (`try_lock`).
    No,
    /// Until this instant.
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// `Until(now + timeout)`.
    pub fn at_most(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Wait::Until(deadline),
            None => Wait::Forever,
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(at) => Some(at),
            _ => None,
        }
    }
}

/// Who may hold at once.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Policy {
    /// A contender holds when no contender carrying one of these markers
    /// comes before it, and waits on the nearest such one only (no herd).
    Exclusive {
        /// The markers that exclude it.
        blocked_by: &'static [&'static str],
    },
    /// A contender holds when fewer than `limit` contenders come before it.
    /// Any of those leaving can let it in, so it waits on the queue's
    /// children.
    Counting {
        /// How many may hold at once.
        limit: usize,
    },
}

/// What a contender waits for before looking at the queue again.
enum Turn {
    Hold,
    /// Watch this node (the predecessor that excludes us).
    AfterNode(NodePath),
    /// Watch the queue's children.
    AfterChildren,
}

/// The queue under one recipe node.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub coordinator: Arc<dyn Coordinator>,
    pub dir: NodePath,
}

/// A contender node of ours.
#[derive(Debug, Clone)]
struct OwnNode {
    path: NodePath,
    name: String,
    token: FencingToken,
    session: u64,
}

impl Queue {
    /// The contenders with one of `markers`, in queue order; none when the
    /// queue's node does not exist.
    pub async fn entries(&self, markers: &[&'static str]) -> kingpin_api::Result<Vec<Entry>> {
        match self.coordinator.children(&self.dir).await {
            Ok(children) => Ok(queue_order(&children, markers)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Enters the queue as `marker` with `data` and waits for a turn as
    /// `policy` says, for as long as `wait` allows.
    ///
    /// `Ok(None)` when the wait ran out; nothing is left in the queue then.
    /// A future dropped half-way leaves nothing either: its node is deleted
    /// in the background.
    pub async fn acquire(
        &self,
        marker: &'static str,
        policy: Policy,
        data: &[u8],
        wait: Wait,
    ) -> Result<Option<LockGuard>> {
        let mut attempt = Attempt {
            queue: self,
            marker,
            policy,
            data,
            leftovers: Leftovers::new(self.clone(), format!("{}{marker}", unique_id())),
            own: None,
        };
        // Subscribed before the first look, so an expiry while waiting is
        // seen even if no watch fires.
        let mut sessions = self.coordinator.session_events();
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(2));
        loop {
            let next = match attempt.next(wait == Wait::No).await {
                Ok(next) => next,
                Err(e) if e.is_retryable() && wait != Wait::No => {
                    tracing::debug!(queue = %self.dir, error = %e, "cannot look at the queue; retrying");
                    if !sleep_within(backoff.next_delay(), wait).await {
                        attempt.leftovers.remove().await;
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) => {
                    attempt.leftovers.remove().await;
                    return Err(e.into());
                }
            };
            backoff.reset();
            let mut stream = match next {
                Next::Hold(own) => {
                    attempt.leftovers.disarm();
                    return Ok(Some(LockGuard::start(
                        self.coordinator.clone(),
                        own.path,
                        own.token,
                        own.session,
                    )));
                }
                Next::GiveUp => {
                    attempt.leftovers.remove().await;
                    return Ok(None);
                }
                Next::LookAgain => continue,
                Next::Wait(stream) => stream,
            };
            tokio::select! {
                event = stream.next() => if event.is_none() {
                    attempt.leftovers.remove().await;
                    return Err(kingpin_api::Error::unavailable("the coordinator is closed").into());
                },
                () = session_changed(&mut sessions) => {}
                () = sleep_until(wait.deadline()) => {
                    attempt.leftovers.remove().await;
                    return Ok(None);
                }
            }
        }
    }
}

/// What an acquisition does after a look at the queue.
enum Next {
    /// Our node holds.
    Hold(OwnNode),
    /// It does not, and we may not wait.
    GiveUp,
    /// What we would wait for changed already: look again.
    LookAgain,
    /// Wait for this watch to fire, then look again.
    Wait(WatchStream),
}

/// One acquisition's progress.
struct Attempt<'a> {
    queue: &'a Queue,
    marker: &'static str,
    policy: Policy,
    data: &'a [u8],
    leftovers: Leftovers,
    own: Option<OwnNode>,
}

impl Attempt<'_> {
    /// Looks at the queue and decides.
    async fn next(&mut self, no_wait: bool) -> kingpin_api::Result<Next> {
        let turn = self.step().await?;
        let path = match turn {
            Turn::Hold => {
                let own = self.own.take().ok_or_else(|| {
                    kingpin_api::Error::new(ErrorKind::Backend, "held without a node")
                })?;
                return Ok(Next::Hold(own));
            }
            _ if no_wait => return Ok(Next::GiveUp),
            Turn::AfterNode(path) => path,
            Turn::AfterChildren => self.queue.dir.clone(),
        };
        Ok(match self.watched(path).await? {
            Some(stream) => Next::Wait(stream),
            None => Next::LookAgain,
        })
    }

    /// Makes sure our node is in the queue and says what to do next.
    async fn step(&mut self) -> kingpin_api::Result<Turn> {
        loop {
            let own = match &self.own {
                Some(own) => own.clone(),
                None => {
                    let own = self.enter().await?;
                    self.own = Some(own.clone());
                    own
                }
            };
            let entries = self.queue.entries(&self.markers()).await?;
            // Twins of our node (a create whose reply was lost, then made
            // again) would block the queue: remove them.
            for twin in entries
                .iter()
                .filter(|e| e.has_prefix(self.leftovers.prefix()) && e.name != own.name)
            {
                self.delete_child(&twin.name).await?;
            }
            let Some(index) = entries.iter().position(|e| e.name == own.name) else {
                // Our node is gone: our session expired (or someone
                // deleted it). Enter again, at the back.
                tracing::info!(queue = %self.queue.dir, node = %own.name, "contender node gone; entering again");
                self.own = None;
                continue;
            };
            return Ok(match self.policy {
                Policy::Exclusive { blocked_by } => match entries[..index]
                    .iter()
                    .rev()
                    .find(|e| blocked_by.contains(&e.marker))
                {
                    Some(blocker) => Turn::AfterNode(self.queue.dir.join(&blocker.name)?),
                    None => Turn::Hold,
                },
                Policy::Counting { limit } if index < limit => Turn::Hold,
                Policy::Counting { .. } => Turn::AfterChildren,
            });
        }
    }

    fn markers(&self) -> Vec<&'static str> {
        let mut markers = vec![self.marker];
        if let Policy::Exclusive { blocked_by } = self.policy {
            markers.extend(blocked_by.iter().filter(|m| **m != self.marker));
        }
        markers
    }

    /// Creates our node, or adopts the one a lost reply created.
    async fn enter(&mut self) -> kingpin_api::Result<OwnNode> {
        let coordinator = &self.queue.coordinator;
        if self.leftovers.created {
            if let Some(own) = self.find_own().await? {
                return Ok(own);
            }
        }
        let prefix = self.queue.dir.join(self.leftovers.prefix())?;
        self.leftovers.created = true;
        let path = coordinator
            .create(&prefix, self.data, CreateMode::EphemeralSequential)
            .await?;
        match coordinator.get(&path).await {
            Ok(node) => Ok(OwnNode {
                name: path.name().to_owned(),
                token: FencingToken::new(node.stat.created_revision),
                session: node
                    .stat
                    .ephemeral_owner
                    .or(coordinator.session_id())
                    .unwrap_or_default(),
                path,
            }),
            // Gone already: the session ended right after the create.
            Err(e) if e.kind() == ErrorKind::NotFound => Err(kingpin_api::Error::new(
                ErrorKind::SessionExpired,
                format!("contender node {path} vanished right after its create"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Our node of this session, if a create whose reply was lost made it.
    async fn find_own(&self) -> kingpin_api::Result<Option<OwnNode>> {
        let coordinator = &self.queue.coordinator;
        let session = coordinator.session_id();
        let entries = self.queue.entries(&[self.marker]).await?;
        for entry in entries
            .iter()
            .filter(|e| e.has_prefix(self.leftovers.prefix()))
        {
            let path = self.queue.dir.join(&entry.name)?;
            match coordinator.get(&path).await {
                Ok(node)
                    if node.stat.ephemeral_owner.is_some()
                        && node.stat.ephemeral_owner == session =>
                {
                    tracing::info!(node = %path, "found the contender node a lost reply created");
                    return Ok(Some(OwnNode {
                        name: entry.name.clone(),
                        token: FencingToken::new(node.stat.created_revision),
                        session: node.stat.ephemeral_owner.unwrap_or_default(),
                        path,
                    }));
                }
                // Left by an ended session of ours: it is going anyway.
                Ok(_) => self.delete_child(&entry.name).await?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn delete_child(&self, name: &str) -> kingpin_api::Result<()> {
        let path = self.queue.dir.join(name)?;
        match self.queue.coordinator.delete(&path, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A watch on `path`, armed before checking that what we wait for has
    /// not happened already (so it cannot slip between the two); `None`
    /// when it has.
    async fn watched(&self, path: NodePath) -> kingpin_api::Result<Option<WatchStream>> {
        let coordinator = &self.queue.coordinator;
        if path != self.queue.dir {
            let watch = coordinator.watch(&path, WatchKind::Data).await?;
            return Ok(coordinator.exists(&path).await?.map(|_| watch));
        }
        let watch = coordinator.watch(&path, WatchKind::Children).await?;
        let entries = self.queue.entries(&self.markers()).await?;
        let turn_came = match (&self.own, self.policy) {
            (Some(own), Policy::Counting { limit }) => entries
                .iter()
                .position(|e| e.name == own.name)
                .is_none_or(|index| index < limit),
            _ => true,
        };
        Ok((!turn_came).then_some(watch))
    }
}

/// The contender nodes one acquisition may have created, removed unless it
/// ends holding: on timeout, error, or when its future is dropped.
struct Leftovers {
    queue: Queue,
    prefix: String,
    /// A create was sent (its node may exist even if it failed).
    created: bool,
    armed: bool,
}

impl Leftovers {
    fn new(queue: Queue, prefix: String) -> Self {
        Leftovers {
            queue,
            prefix,
            created: false,
            armed: true,
        }
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Deletes our nodes now; on failure, keeps trying in the background.
    async fn remove(&mut self) {
        self.armed = false;
        if !self.created {
            return;
        }
        if remove_prefixed(&self.queue, &self.prefix).await.is_err() {
            spawn_removal(self.queue.clone(), self.prefix.clone());
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if self.armed && self.created {
            spawn_removal(self.queue.clone(), self.prefix.clone());
        }
    }
}

async fn remove_prefixed(queue: &Queue, prefix: &str) -> kingpin_api::Result<()> {
    let children = match queue.coordinator.children(&queue.dir).await {
        Ok(children) => children,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in children.iter().filter(|c| c.starts_with(prefix)) {
        match queue
            .coordinator
            .delete(&queue.dir.join(child)?, None)
            .await
        {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn spawn_removal(queue: Queue, prefix: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut backoff = Backoff::default();
        for _ in 0..20 {
            match remove_prefixed(&queue, &prefix).await {
                Ok(()) => return,
                Err(e) if e.is_retryable() && queue.coordinator.session_state() != SessionState::Closed => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.dir, error = %e, "cannot remove an abandoned contender");
                    return;
                }
            }
        }
    });
}

/// Completes on a session event after which the queue must be looked at
/// again: a new session (ours may have lost its node) or a reconnect.
async fn session_changed(sessions: &mut kingpin_api::SessionEvents) {
    loop {
        match sessions.next().await {
            Some(SessionEvent::Suspended) => {}
            Some(_) => return,
            None => std::future::pending().await,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sleeps `delay` unless that passes the deadline; `false` when it would.
async fn sleep_within(delay: Duration, wait: Wait) -> bool {
    match wait {
        Wait::No => false,
        Wait::Until(deadline) if Instant::now() + delay >= deadline => {
            tokio::time::sleep_until(deadline).await;
            false
        }
        _ => {
            tokio::time::sleep(delay).await;
            true
        }
    }
}
