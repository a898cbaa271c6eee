//! Barriers: a gate that opens when its node is removed, and a double
//! barrier that a fixed number of participants enter and leave together.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Backoff, Coordinator, CreateMode, ErrorKind, NodePath, WatchKind};
use tokio::time::Instant;

use crate::contender::unique_id;
use crate::error::{Error, Result};

/// The child of a double barrier that says everyone entered.
const READY: &str = "ready";

/// A barrier: while its node exists, [`wait`](Self::wait) waits; removing
/// the node lets every waiter through (kazoo's `Barrier`, on the same node).
///
/// # Guarantees
///
/// * A waiter returns only after the node was seen absent, and never
///   misses a removal (the watch is armed before the check).
///
/// # Not guaranteed
///
/// * That the barrier is still open when a waiter acts: someone may have
///   created it again meanwhile.
#[derive(Debug, Clone)]
pub struct Barrier {
    coordinator: Arc<dyn Coordinator>,
    path: NodePath,
}

impl Barrier {
    /// The barrier at `path`.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        Barrier { coordinator, path }
    }

    /// Closes the barrier (creates its node); closing a closed one is fine.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn create(&self) -> Result<()> {
        match self
            .coordinator
            .create(&self.path, b"", CreateMode::Persistent)
            .await
        {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Opens the barrier (deletes its node); opening an open one is fine.
    ///
    /// # Errors
    ///
    /// The coordinator's (`NotEmpty` if someone put children under it).
    pub async fn remove(&self) -> Result<()> {
        match self.coordinator.delete(&self.path, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Waits until the barrier is open.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn wait(&self) -> Result<()> {
        self.wait_until(None).await.map(drop)
    }

    /// Waits at most `timeout`; `false` when the barrier stayed closed.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Instant::now().checked_add(timeout)).await
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut watch = self.coordinator.watch(&self.path, WatchKind::Data).await?;
        loop {
            if self.coordinator.exists(&self.path).await?.is_none() {
                return Ok(true);
            }
            if !next_or_deadline(&mut watch, deadline).await? {
                return Ok(false);
            }
        }
    }
}

/// A double barrier for `count` participants: [`enter`](Self::enter)
/// returns once `count` have entered, [`leave`](Self::leave) once all of
/// them have left (the ZooKeeper recipe; kazoo's `DoubleBarrier` keeps the
/// same `ready` node, with participants named by a UUID).
///
/// # Guarantees
///
/// * Nobody gets past `enter` before `count` participants are in, and
///   nobody gets past `leave` while a participant is still in.
/// * Participants are ephemeral: one whose session ends counts as gone
///   from then on (it no longer holds the others in `leave`).
///
/// # Not guaranteed
///
/// * Reuse: a path serves one round. The `ready` node is removed by the
///   last to leave, and a participant of a new round arriving before that
///   would pass at once; give each round a path of its own.
/// * That `enter` notices participants that leave before `count` are in:
///   participants should not give up half-way.
#[derive(Debug)]
pub struct DoubleBarrier {
    coordinator: Arc<dyn Coordinator>,
    path: NodePath,
    count: usize,
    node: NodePath,
    data: Vec<u8>,
}

impl DoubleBarrier {
    /// A participant of the barrier at `path` for `count` participants.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `count` is zero.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath, count: usize) -> Result<Self> {
        if count == 0 {
            return Err(Error::InvalidArgument(
                "a double barrier needs at least one participant".to_owned(),
            ));
        }
        let node = path.join(&unique_id())?;
        Ok(DoubleBarrier {
            coordinator,
            path,
            count,
            node,
            data: Vec::new(),
        })
    }

    /// Stores `data` in this participant's node.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Enters and waits until `count` participants are in.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn enter(&self) -> Result<()> {
        let ready = self.path.join(READY)?;
        let mut ready_watch = self.coordinator.watch(&ready, WatchKind::Data).await?;
        self.create_own().await?;
        loop {
            if self.participants().await?.len() >= self.count {
                match self
                    .coordinator
                    .create(&ready, b"", CreateMode::Persistent)
                    .await
                {
                    Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e.into()),
                    _ => return Ok(()),
                }
            }
            if self.coordinator.exists(&ready).await?.is_some() {
                return Ok(());
            }
            next_or_deadline(&mut ready_watch, None).await?;
        }
    }

    /// Leaves and waits until every participant has left.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn leave(&self) -> Result<()> {
        let own = self.node.name().to_owned();
        loop {
            let participants = self.participants().await?;
            let (Some(lowest), Some(highest)) = (participants.first(), participants.last()) else {
                return self.remove_ready().await;
            };
            if participants.len() == 1 && lowest == &own {
                self.delete(&own).await?;
                return self.remove_ready().await;
            }
            // The lowest leaves last: it waits for the highest; everyone
            // else leaves and waits for the lowest. One watch each.
            let awaited = if lowest == &own {
                highest.clone()
            } else {
                if participants.contains(&own) {
                    self.delete(&own).await?;
                }
                lowest.clone()
            };
            let path = self.path.join(&awaited)?;
            let mut watch = self.coordinator.watch(&path, WatchKind::Data).await?;
            if self.coordinator.exists(&path).await?.is_some() {
                next_or_deadline(&mut watch, None).await?;
            }
        }
    }

    async fn create_own(&self) -> Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self
                .coordinator
                .create(&self.node, &self.data, CreateMode::Ephemeral)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                // The reply may have been lost: the fixed name tells.
                Err(e) if e.is_retryable() => {
                    tokio::time::sleep(backoff.next_delay()).await;
                    match self.coordinator.exists(&self.node).await {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) => {}
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The participants in, sorted by name.
    async fn participants(&self) -> Result<Vec<String>> {
        let mut names = match self.coordinator.children(&self.path).await {
            Ok(names) => names,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        names.retain(|n| n != READY);
        names.sort();
        Ok(names)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.coordinator.delete(&self.path.join(name)?, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn remove_ready(&self) -> Result<()> {
        self.delete(READY).await
    }
}

/// Waits for the watch's next event; `false` when the deadline came first.
async fn next_or_deadline(
    watch: &mut kingpin_api::WatchStream,
    deadline: Option<Instant>,
) -> Result<bool> {
    let event = match deadline {
        Some(at) => match tokio::time::timeout_at(at, watch.next()).await {
            Ok(event) => event,
            Err(_) => return Ok(false),
        },
        None => watch.next().await,
    };
    match event {
        Some(_) => Ok(true),
        None => Err(kingpin_api::Error::unavailable("the coordinator is closed").into()),
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn a_barrier_holds_waiters_until_removed() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/gate").unwrap();
        let gate = Barrier::new(Arc::new(server.connect()), path.clone());
        assert!(gate.wait_timeout(Duration::from_millis(1)).await.unwrap());
        gate.create().await.unwrap();
        assert!(!gate.wait_timeout(Duration::from_millis(20)).await.unwrap());
        let waiter = Barrier::new(Arc::new(server.connect()), path);
        let waiting = tokio::spawn(async move { waiter.wait().await });
        gate.remove().await.unwrap();
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn participants_enter_and_leave_together() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/double").unwrap();
        let mut tasks = Vec::new();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let barrier = DoubleBarrier::new(Arc::new(server.connect()), path.clone(), 3).unwrap();
            let inside = inside.clone();
            tasks.push(tokio::spawn(async move {
                barrier.enter().await.unwrap();
                inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                barrier.leave().await.unwrap();
                // Everyone entered before anyone left.
                assert_eq!(inside.load(std::sync::atomic::Ordering::SeqCst), 3);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let c = server.connect();
        assert!(c.children(&path).await.unwrap().is_empty());
    }
}
