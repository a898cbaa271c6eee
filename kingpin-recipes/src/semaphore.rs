//! A counting semaphore: at most N holders at once.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath};

use crate::contender::LEASE_MARKER;
use crate::error::{Error, Result};
use crate::hold::LockGuard;
use crate::lock::Contender;
use crate::queue::{Policy, Queue, Wait};

/// A semaphore on a coordinator node: at most `limit` holders at once
/// among every process that uses the path.
///
/// Contenders queue as `<id>__lease__<sequence>`; the first `limit` hold.
/// The limit is stored in the semaphore's node, and a semaphore opened
/// with another limit on the same path is refused, so processes cannot
/// silently disagree on it.
///
/// # Guarantees
///
/// * While the holders' sessions live, at most `limit` contenders hold.
/// * First come, first served; a waiter whose predecessors vanished reads
///   the whole queue again.
/// * Leases are [`LockGuard`]s: fencing tokens, guarded writes, suspension
///   and expiry as for a lock; lost create replies and cancelled waits
///   leave nothing behind.
///
/// # Not guaranteed
///
/// * No herd avoidance: any holder leaving can let any waiter in, so every
///   waiter watches the queue and wakes on each change. Fine for tens of
///   waiters; use a [`Lock`](crate::Lock) per slot for thousands.
/// * Interop with kazoo's `Semaphore`, which is built differently (a lock
///   beside a pool of leases).
#[derive(Debug, Clone)]
pub struct Semaphore {
    queue: Queue,
    limit: usize,
    identifier: Vec<u8>,
}

impl Semaphore {
    /// A semaphore on `path` admitting `limit` holders.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `limit` is zero.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath, limit: usize) -> Result<Self> {
        if limit == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore's limit must be at least 1".to_owned(),
            ));
        }
        Ok(Semaphore {
            queue: Queue {
                coordinator,
                dir: path,
            },
            limit,
            identifier: Vec::new(),
        })
    }

    /// Stores `identifier` in this semaphore's contender nodes.
    pub fn with_identifier(mut self, identifier: impl Into<Vec<u8>>) -> Self {
        self.identifier = identifier.into();
        self
    }

    /// How many may hold at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits for a lease as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the path's semaphore has another limit;
    /// the coordinator's, except unavailability, which is waited out.
    pub async fn acquire(&self) -> Result<LockGuard> {
        match self.acquire_within(Wait::Forever).await? {
            Some(lease) => Ok(lease),
            None => Err(kingpin_api::Error::new(
                ErrorKind::Backend,
                "an unbounded wait for a lease ended without it",
            )
            .into()),
        }
    }

    /// Waits for a lease at most `timeout`; `None` when none came.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire_within(Wait::at_most(timeout)).await
    }

    /// Takes a lease if one is free and nobody waits; `None` otherwise.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), unavailability included.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        self.acquire_within(Wait::No).await
    }

    /// The contenders in queue order: the first [`limit`](Self::limit)
    /// hold.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn contenders(&self) -> Result<Vec<Contender>> {
        let mut out = Vec::new();
        for entry in self.queue.entries(&[LEASE_MARKER]).await? {
            let node = self.queue.dir.join(&entry.name)?;
            match self.queue.coordinator.get(&node).await {
                Ok(found) => out.push(Contender {
                    node,
                    sequence: entry.sequence,
                    identifier: found.data,
                }),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    async fn acquire_within(&self, wait: Wait) -> Result<Option<LockGuard>> {
        self.agree_on_limit().await?;
        let policy = Policy::Counting { limit: self.limit };
        self.queue
            .acquire(LEASE_MARKER, policy, &self.identifier, wait)
            .await
    }

    /// Records the limit in the semaphore's node, or checks it against the
    /// one recorded.
    async fn agree_on_limit(&self) -> Result<()> {
        let coordinator = &self.queue.coordinator;
        let path = &self.queue.dir;
        let wanted = self.limit.to_string();
        loop {
            match coordinator
                .create(path, wanted.as_bytes(), CreateMode::Persistent)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let node = match coordinator.get(path).await {
                Ok(node) => node,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if node.data == wanted.as_bytes() {
                return Ok(());
            }
            if !node.data.is_empty() {
                return Err(Error::Conflict {
                    path: path.clone(),
                    message: format!(
                        "the semaphore's limit is {:?}, not {wanted}",
                        String::from_utf8_lossy(&node.data)
                    ),
                });
            }
            // Made empty as a parent by a contender's create: claim it.
            match coordinator
                .set(path, wanted.as_bytes(), Some(node.stat.version))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::BadVersion | ErrorKind::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn admits_at_most_the_limit_and_refuses_another_limit() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/sem").unwrap();
        let sem = |limit| Semaphore::new(Arc::new(server.connect()), path.clone(), limit).unwrap();
        let a = sem(2).acquire().await.unwrap();
        let b = sem(2).try_acquire().await.unwrap().expect("a second lease");
        assert!(sem(2).try_acquire().await.unwrap().is_none());
        let err = sem(3).try_acquire().await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let waiter = sem(2);
        let waiting = tokio::spawn(async move { waiter.acquire().await });
        a.release().await.unwrap();
        let c = waiting.await.unwrap().unwrap();
        assert!(c.token() > b.token());
        assert_eq!(sem(2).contenders().await.unwrap().len(), 2);
        assert!(Semaphore::new(Arc::new(server.connect()), path, 0).is_err());
    }
}
