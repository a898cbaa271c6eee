//! Leader election: one leader at a time, observed by anyone.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Backoff, Coordinator, NodePath, WatchKind};
use tokio::sync::watch;

use crate::error::{NotHeldReason, Result};
use crate::hold::{FencingToken, LockGuard};
use crate::lock::{contenders, Contender, Lock};
use crate::queue::Queue;

/// An election on a coordinator node: candidates queue as a [`Lock`]'s
/// contenders do, and the holder of the lock is the leader. kazoo's
/// `Election` works the same way on the same names, so its candidates and
/// ours take part in one election.
///
/// ```no_run
/// # async fn demo(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>) -> kingpin_recipes::Result<()> {
/// use kingpin_api::NodePath;
/// use kingpin_recipes::Election;
///
/// let election = Election::new(coordinator, NodePath::parse("/election/scheduler")?)
///     .with_identifier("host-a:8080");
/// let leadership = election.campaign().await?;
/// tokio::select! {
///     _ = leadership.until_not_leader() => { /* stop leading at once */ }
///     _ = async { /* lead */ } => {}
/// }
/// leadership.resign().await?;
/// # Ok(()) }
/// ```
///
/// # Guarantees
///
/// * At most one leader while its session lives, and one whenever a
///   candidate lives: when the leader resigns or its session ends, the
///   next candidate leads (within the session timeout of a crashed
///   leader's process, plus the time its watch takes).
/// * [`Leadership::is_leader`] turns false as soon as the leader's session
///   is suspended, not only when it expires.
/// * Every leadership carries a token larger than every earlier leader's;
///   an old leader's guarded write fails once its session ended.
///
/// # Not guaranteed
///
/// * That a leader knows at once that it was deposed by an expiry it has
///   not heard of yet (see [`LockGuard`]): fence external writes with the
///   token.
#[derive(Debug, Clone)]
pub struct Election {
    lock: Lock,
}

/// Leading an election, until [`resign`](Self::resign) or the session ends.
/// A [`LockGuard`] underneath: its token, state and guarded writes are the
/// leadership's.
#[derive(Debug)]
pub struct Leadership {
    guard: LockGuard,
}

impl Election {
    /// An election on `path`. Nothing is created until a campaign.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        Election {
            lock: Lock::new(coordinator, path),
        }
    }

    /// The identifier candidates of this value show as (in their node's
    /// data): what [`leader`](Self::leader) and kazoo's `contenders()`
    /// read.
    pub fn with_identifier(mut self, identifier: impl Into<Vec<u8>>) -> Self {
        self.lock = self.lock.with_identifier(identifier);
        self
    }

    /// The election's path.
    pub fn path(&self) -> &NodePath {
        self.lock.path()
    }

    /// Runs as a candidate until elected.
    ///
    /// # Errors
    ///
    /// The coordinator's, except unavailability, which is waited out.
    pub async fn campaign(&self) -> Result<Leadership> {
        Ok(Leadership {
            guard: self.lock.lock().await?,
        })
    }

    /// Runs as a candidate at most `timeout`; `None` when not elected by
    /// then (the candidacy is withdrawn).
    ///
    /// # Errors
    ///
    /// As [`campaign`](Self::campaign).
    pub async fn campaign_timeout(&self, timeout: Duration) -> Result<Option<Leadership>> {
        Ok(self
            .lock
            .lock_timeout(timeout)
            .await?
            .map(|guard| Leadership { guard }))
    }

    /// The current leader, if any candidate runs.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn leader(&self) -> Result<Option<Contender>> {
        Ok(self.lock.contenders().await?.into_iter().next())
    }

    /// The leader first, then the candidates in order.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn candidates(&self) -> Result<Vec<Contender>> {
        self.lock.contenders().await
    }

    /// Follows the leader: the receiver holds the current one and changes
    /// with every new leader (or none), until it is dropped.
    ///
    /// # Errors
    ///
    /// The coordinator's, for the first read.
    pub async fn observe(&self) -> Result<watch::Receiver<Option<Contender>>> {
        let queue = Queue {
            coordinator: self.lock_coordinator(),
            dir: self.path().clone(),
        };
        let mut changes = queue
            .coordinator
            .watch(&queue.dir, WatchKind::Children)
            .await?;
        let first = contenders(&queue).await?.into_iter().next();
        let (sender, receiver) = watch::channel(first);
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            let mut retry = None;
            loop {
                tokio::select! {
                    event = changes.next() => if event.is_none() { return },
                    () = sleep_opt(retry) => {}
                    () = sender.closed() => return,
                }
                match contenders(&queue).await {
                    Ok(found) => {
                        retry = None;
                        backoff.reset();
                        let leader = found.into_iter().next();
                        sender.send_if_modified(|current| {
                            let changed = current.as_ref().map(|c| &c.node)
                                != leader.as_ref().map(|c| &c.node);
                            *current = leader;
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::debug!(election = %queue.dir, error = %e, "cannot read the candidates; retrying");
                        retry = Some(backoff.next_delay());
                    }
                }
            }
        });
        Ok(receiver)
    }

    fn lock_coordinator(&self) -> Arc<dyn Coordinator> {
        self.lock.coordinator()
    }
}

async fn sleep_opt(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

impl Leadership {
    /// Whether this candidate may lead now: elected, and its session
    /// connected (false as soon as it is suspended).
    pub fn is_leader(&self) -> bool {
        self.guard.is_held()
    }

    /// The leadership's fencing token.
    pub fn token(&self) -> FencingToken {
        self.guard.token()
    }

    /// Completes as soon as this candidate may not lead (suspended or
    /// deposed), with the reason.
    pub async fn until_not_leader(&self) -> NotHeldReason {
        self.guard.until_not_held().await
    }

    /// Steps down: the next candidate leads.
    ///
    /// # Errors
    ///
    /// As [`LockGuard::release`].
    pub async fn resign(self) -> Result<()> {
        self.guard.release().await
    }
}

impl Deref for Leadership {
    type Target = LockGuard;

    fn deref(&self) -> &LockGuard {
        &self.guard
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn the_next_candidate_leads_after_a_resignation() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/election").unwrap();
        let election =
            |id: &str| Election::new(Arc::new(server.connect()), path.clone()).with_identifier(id);
        let observer = election("observer");
        assert_eq!(observer.leader().await.unwrap(), None);
        let a = election("a").campaign().await.unwrap();
        let mut leader = observer.observe().await.unwrap();
        assert_eq!(leader.borrow().as_ref().unwrap().identifier, b"a");
        let b = election("b");
        let b_campaign = tokio::spawn(async move { b.campaign().await });
        assert!(a.is_leader());
        a.resign().await.unwrap();
        let b = b_campaign.await.unwrap().unwrap();
        assert!(b.is_leader());
        leader
            .wait_for(|l| l.as_ref().is_some_and(|l| l.identifier == b"b"))
            .await
            .unwrap();
    }
}
