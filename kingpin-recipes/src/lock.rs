//! A fair, fenced, distributed mutual-exclusion lock.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{Coordinator, NodePath};

use crate::contender::LOCK_MARKER;
use crate::error::Result;
use crate::hold::LockGuard;
use crate::queue::{Policy, Queue, Wait};

/// A lock on a coordinator node: at most one holder at a time among every
/// process that uses the same path (and among kazoo `Lock`s on it).
///
/// Each acquisition enters a queue: an ephemeral-sequential contender node
/// `<id>__lock__<sequence>` under the lock's path (see the crate docs for
/// the naming). The first contender holds; every other one watches only
/// the contender just before it, so a release wakes one waiter, not all
/// (no herd), and contenders are served first come, first served.
///
/// ```no_run
/// # async fn demo(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>) -> kingpin_recipes::Result<()> {
/// use kingpin_api::{NodePath, Op};
/// use kingpin_recipes::Lock;
///
/// let lock = Lock::new(coordinator, NodePath::parse("/locks/nightly-report")?);
/// let guard = lock.lock().await?;
/// // Written only while the lock is held: the ownership check and the
/// // write are one transaction.
/// let done = NodePath::parse("/reports/last-run")?;
/// guard.guarded_set(&done, guard.token().to_string().as_bytes(), None).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
///
/// # Guarantees
///
/// * While a holder's session lives, no other contender holds.
/// * Waiters acquire in the order they entered. A waiter whose predecessor
///   vanished (released, or its session expired) reads the whole queue
///   again rather than assume its turn came.
/// * Every acquisition carries a [`FencingToken`](crate::FencingToken)
///   larger than every earlier holder's.
/// * A create whose reply was lost (connection drop) leaves no orphan
///   contender: the contender's unique id finds it again. A timed-out or
///   cancelled acquisition leaves nothing in the queue.
/// * Holder-side guarantees (suspension, expiry, guarded writes) are
///   [`LockGuard`]'s.
///
/// # Not guaranteed
///
/// * Mutual exclusion past a session's end: when the server expires a
///   holder's session, the next contender may hold before the old holder
///   hears of it. Use the guard's token or guarded writes.
/// * Reentrancy: acquiring again from the same process waits behind the
///   first acquisition.
/// * Exclusion of read-write lock readers: a `Lock` ignores `__rlock__`
///   contenders on its path, as kazoo's does; use [`RwLock::write`](crate::RwLock::write)
///   for that.
#[derive(Debug, Clone)]
pub struct Lock {
    queue: Queue,
    identifier: Vec<u8>,
}

/// Who wants or holds a lock (or leadership): a contender node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    /// The contender node.
    pub node: NodePath,
    /// Its place in the queue (the coordinator's counter).
    pub sequence: u64,
    /// The identifier its owner gave (empty by default), as kazoo's
    /// `contenders()` reads it.
    pub identifier: Vec<u8>,
}

impl Lock {
    /// A lock on `path`. Nothing is created until it is acquired.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        Lock {
            queue: Queue {
                coordinator,
                dir: path,
            },
            identifier: Vec::new(),
        }
    }

    /// Stores `identifier` (a host name, a process description) in this
    /// lock's contender nodes, for [`contenders`](Self::contenders) and
    /// kazoo's `contenders()` to show.
    pub fn with_identifier(mut self, identifier: impl Into<Vec<u8>>) -> Self {
        self.identifier = identifier.into();
        self
    }

    /// The lock's path.
    pub fn path(&self) -> &NodePath {
        &self.queue.dir
    }

    pub(crate) fn coordinator(&self) -> Arc<dyn Coordinator> {
        self.queue.coordinator.clone()
    }

    /// Waits for the lock as long as it takes.
    ///
    /// # Errors
    ///
    /// The coordinator's, except unavailability, which is waited out.
    pub async fn lock(&self) -> Result<LockGuard> {
        match self.acquire(Wait::Forever).await? {
            Some(guard) => Ok(guard),
            None => Err(kingpin_api::Error::new(
                kingpin_api::ErrorKind::Backend,
                "an unbounded wait for a lock ended without it",
            )
            .into()),
        }
    }

    /// Waits for the lock at most `timeout`; `None` when it did not come,
    /// leaving nothing in the queue.
    ///
    /// # Errors
    ///
    /// The coordinator's, except unavailability, which is waited out
    /// within the timeout.
    pub async fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire(Wait::at_most(timeout)).await
    }

    /// Takes the lock if nobody holds or waits for it; `None` otherwise.
    ///
    /// # Errors
    ///
    /// The coordinator's, unavailability included.
    pub async fn try_lock(&self) -> Result<Option<LockGuard>> {
        self.acquire(Wait::No).await
    }

    /// The holder first, then the waiters in order.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn contenders(&self) -> Result<Vec<Contender>> {
        contenders(&self.queue).await
    }

    async fn acquire(&self, wait: Wait) -> Result<Option<LockGuard>> {
        const EXCLUSIVE: Policy = Policy::Exclusive {
            blocked_by: &[LOCK_MARKER],
        };
        self.queue
            .acquire(LOCK_MARKER, EXCLUSIVE, &self.identifier, wait)
            .await
    }
}

/// The `__lock__` contenders of `queue` with their identifiers, in order.
pub(crate) async fn contenders(queue: &Queue) -> Result<Vec<Contender>> {
    let mut out = Vec::new();
    for entry in queue.entries(&[LOCK_MARKER]).await? {
        let node = queue.dir.join(&entry.name)?;
        match queue.coordinator.get(&node).await {
            Ok(found) => out.push(Contender {
                node,
                sequence: entry.sequence,
                identifier: found.data,
            }),
            // It left meanwhile.
            Err(e) if e.kind() == kingpin_api::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kingpin_api::{ErrorKind, MemoryServer};

    use super::*;
    use crate::hold::HoldState;

    fn lock(server: &MemoryServer) -> Lock {
        Lock::new(
            Arc::new(server.connect()),
            NodePath::parse("/locks/unit").unwrap(),
        )
    }

    #[tokio::test]
    async fn one_holder_then_the_next_in_order() {
        let server = MemoryServer::new();
        let (a, b) = (lock(&server), lock(&server).with_identifier("b"));
        let first = a.lock().await.unwrap();
        assert!(first.is_held());
        assert!(b.try_lock().await.unwrap().is_none());
        assert!(b
            .lock_timeout(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none());
        assert_eq!(a.contenders().await.unwrap().len(), 1, "no waiter left");
        let waiting = tokio::spawn(async move { b.lock().await });
        tokio::task::yield_now().await;
        let token = first.token();
        first.release().await.unwrap();
        let second = waiting.await.unwrap().unwrap();
        assert!(second.token() > token);
        let contenders = a.contenders().await.unwrap();
        assert_eq!(contenders.len(), 1);
        assert_eq!(contenders[0].identifier, b"b");
    }

    #[tokio::test]
    async fn expiry_loses_the_hold_and_refuses_guarded_writes() {
        let server = MemoryServer::new();
        let holder_session = Arc::new(server.connect());
        let holder = Lock::new(
            holder_session.clone(),
            NodePath::parse("/locks/unit").unwrap(),
        );
        let guard = holder.lock().await.unwrap();
        let target = NodePath::parse("/target").unwrap();
        holder_session
            .create(&target, b"", kingpin_api::CreateMode::Persistent)
            .await
            .unwrap();
        guard.guarded_set(&target, b"1", None).await.unwrap();
        holder_session.expire_session();
        assert!(!guard.is_held());
        let err = guard.guarded_set(&target, b"2", None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SessionExpired, "{err}");
        let mut state = guard.watch_state();
        state
            .wait_for(|s| matches!(s, HoldState::Lost(_)))
            .await
            .unwrap();
        let next = lock(&server).try_lock().await.unwrap().expect("free now");
        assert!(next.token() > guard.token());
    }
}
