//! A read-write lock: readers share, writers exclude everyone.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{Coordinator, NodePath};

use crate::contender::{LOCK_MARKER, READ_MARKER};
use crate::error::Result;
use crate::hold::LockGuard;
use crate::queue::{Policy, Queue, Wait};

/// Readers are blocked only by writers; writers by everyone.
const READER: Policy = Policy::Exclusive {
    blocked_by: &[LOCK_MARKER],
};
const WRITER: Policy = Policy::Exclusive {
    blocked_by: &[LOCK_MARKER, READ_MARKER],
};

/// A read-write lock on a coordinator node, compatible with kazoo's
/// `ReadLock` and `WriteLock` on the same path.
///
/// Readers enter the queue as `<id>__rlock__<sequence>`, writers as
/// `<id>__lock__<sequence>`. A reader holds once no writer entered before
/// it, and waits only on the nearest earlier writer; a writer holds once
/// nobody entered before it, and waits only on its immediate predecessor.
/// Both are [`LockGuard`]s, with the lock's guarantees (fairness, no herd,
/// lost replies, suspension, fencing, guarded writes).
///
/// # Guarantees
///
/// * While a writer's session lives, nobody else holds; readers hold
///   together.
/// * First come, first served: a reader that arrives after a waiting
///   writer waits for it, so writers are not starved.
///
/// # Not guaranteed
///
/// * A reader's token is not unique to it (readers hold together); it
///   still grows with every new holder, so it fences writes of readers
///   against those of earlier writers.
/// * A plain [`Lock`](crate::Lock) on the same path ignores readers.
#[derive(Debug, Clone)]
pub struct RwLock {
    queue: Queue,
    identifier: Vec<u8>,
}

impl RwLock {
    /// A read-write lock on `path`. Nothing is created until it is used.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        RwLock {
            queue: Queue {
                coordinator,
                dir: path,
            },
            identifier: Vec::new(),
        }
    }

    /// Stores `identifier` in this lock's contender nodes.
    pub fn with_identifier(mut self, identifier: impl Into<Vec<u8>>) -> Self {
        self.identifier = identifier.into();
        self
    }

    /// The lock's path.
    pub fn path(&self) -> &NodePath {
        &self.queue.dir
    }

    /// Waits for a read hold as long as it takes.
    ///
    /// # Errors
    ///
    /// The coordinator's, except unavailability, which is waited out.
    pub async fn read(&self) -> Result<LockGuard> {
        self.forever(READ_MARKER, READER).await
    }

    /// Waits for a read hold at most `timeout`; `None` when it did not come.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire(READ_MARKER, READER, Wait::at_most(timeout))
            .await
    }

    /// Takes a read hold if no writer holds or waits; `None` otherwise.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn try_read(&self) -> Result<Option<LockGuard>> {
        self.acquire(READ_MARKER, READER, Wait::No).await
    }

    /// Waits for the write hold as long as it takes.
    ///
    /// # Errors
    ///
    /// The coordinator's, except unavailability, which is waited out.
    pub async fn write(&self) -> Result<LockGuard> {
        self.forever(LOCK_MARKER, WRITER).await
    }

    /// Waits for the write hold at most `timeout`; `None` when it did not
    /// come.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub async fn write_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire(LOCK_MARKER, WRITER, Wait::at_most(timeout))
            .await
    }

    /// Takes the write hold if nobody holds or waits; `None` otherwise.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn try_write(&self) -> Result<Option<LockGuard>> {
        self.acquire(LOCK_MARKER, WRITER, Wait::No).await
    }

    async fn forever(&self, marker: &'static str, policy: Policy) -> Result<LockGuard> {
        match self.acquire(marker, policy, Wait::Forever).await? {
            Some(guard) => Ok(guard),
            None => Err(kingpin_api::Error::new(
                kingpin_api::ErrorKind::Backend,
                "an unbounded wait for a lock ended without it",
            )
            .into()),
        }
    }

    async fn acquire(
        &self,
        marker: &'static str,
        policy: Policy,
        wait: Wait,
    ) -> Result<Option<LockGuard>> {
        self.queue
            .acquire(marker, policy, &self.identifier, wait)
            .await
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn readers_share_and_wait_only_on_earlier_writers() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/rw").unwrap();
        let rw = || RwLock::new(Arc::new(server.connect()), path.clone());
        let r1 = rw().read().await.unwrap();
        let r2 = rw().try_read().await.unwrap().expect("readers share");
        assert!(
            rw().try_write().await.unwrap().is_none(),
            "readers exclude writers"
        );
        let writer = rw();
        let waiting_writer = tokio::spawn(async move { writer.write().await });
        // Let the writer enter the queue behind the readers.
        while rw().queue.entries(&[LOCK_MARKER]).await.unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(
            rw().try_read().await.unwrap().is_none(),
            "a reader behind a waiting writer waits"
        );
        r1.release().await.unwrap();
        r2.release().await.unwrap();
        let w = waiting_writer.await.unwrap().unwrap();
        assert!(rw().try_read().await.unwrap().is_none());
        w.release().await.unwrap();
        assert!(rw().try_read().await.unwrap().is_some());
    }
}
