//! A shared integer, added to by compare-and-set, never twice.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{Backoff, Coordinator, CreateMode, ErrorKind, NodePath, Op};

use crate::contender::unique_id;
use crate::error::{Error, Result};
use crate::hold::delete_in_background;

/// What marks a child of the counter as an addition's receipt.
const RECEIPT_MARKER: &str = "__add__";

/// A counter in a coordinator node, holding its value as a decimal integer
/// (as kazoo's `Counter` does for integers, so either reads the other's).
///
/// [`add`](Self::add) is a compare-and-set loop. Each addition also
/// creates a receipt, a child `<id>__add__` holding the new value, in the
/// same transaction as the change. When a connection drops before the
/// answer arrives, the retry either applies the addition or, finding the
/// receipt already there, learns that the first try did, and returns
/// what it set. The receipt is deleted once the outcome is known.
///
/// # Guarantees
///
/// * An addition is applied at most once, and exactly once when `add`
///   returns `Ok`, however many times a lost answer makes it retry: the
///   receipt can be created only once, and every late retry expects a
///   version the counter has left behind.
/// * Concurrent additions from any number of processes are never lost.
///
/// # Not guaranteed
///
/// * The outcome of an `add` whose future is dropped (or whose process
///   dies) half-way: it may or may not have been applied, and its receipt
///   may stay behind as a child of the counter (harmless; not counted).
/// * Anything if the counter's node is deleted while additions run: its
///   versions start again and a late retry could match.
#[derive(Debug, Clone)]
pub struct Counter {
    coordinator: Arc<dyn Coordinator>,
    path: NodePath,
}

impl Counter {
    /// The counter at `path`; a missing node counts as 0.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        Counter { coordinator, path }
    }

    /// The counter's path.
    pub fn path(&self) -> &NodePath {
        &self.path
    }

    /// The value now.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the node does not hold an integer; the
    /// coordinator's.
    pub async fn get(&self) -> Result<i64> {
        match self.coordinator.get(&self.path).await {
            Ok(node) => self.parse(&node.data),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds `delta` (negative to subtract) and returns the new value,
    /// retrying conflicts and lost connections until it is applied.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the node does not hold an integer or the
    /// sum would overflow; the coordinator's errors that no retry fixes.
    pub async fn add(&self, delta: i64) -> Result<i64> {
        let receipt = self
            .path
            .join(&format!("{}{RECEIPT_MARKER}", unique_id()))?;
        let mut conflicts = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
        let mut outages = Backoff::default();
        loop {
            let (current, version) = match self.read().await {
                Ok(read) => read,
                Err(Error::Coordinator(e)) if e.is_retryable() => {
                    tokio::time::sleep(outages.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            outages.reset();
            let next = current.checked_add(delta).ok_or_else(|| Error::Conflict {
                path: self.path.clone(),
                message: format!("adding {delta} to {current} overflows"),
            })?;
            let data = next.to_string().into_bytes();
            let ops = vec![
                Op::Set {
                    path: self.path.clone(),
                    data: data.clone(),
                    expected_version: Some(version),
                },
                Op::Create {
                    path: receipt.clone(),
                    data,
                    mode: CreateMode::Persistent,
                },
            ];
            match self.coordinator.transaction(ops).await {
                Ok(_) => {
                    self.discard(&receipt).await;
                    return Ok(next);
                }
                // An earlier try was applied; its receipt says to what.
                Err(e)
                    if e.kind() == ErrorKind::AlreadyExists && e.operation_index() == Some(1) =>
                {
                    let applied = self.read_receipt(&receipt).await?;
                    self.discard(&receipt).await;
                    return applied.ok_or_else(|| Error::Conflict {
                        path: receipt.clone(),
                        message: "the addition's receipt was deleted by someone else; \
                                  it was applied once, to an unknown value"
                            .to_owned(),
                    });
                }
                Err(e) if matches!(e.kind(), ErrorKind::BadVersion | ErrorKind::NotFound) => {
                    tokio::time::sleep(conflicts.next_delay()).await;
                }
                // Outcome unknown: the next try settles it.
                Err(e) if e.is_retryable() => {
                    tracing::debug!(counter = %self.path, error = %e, "addition's outcome unknown; retrying");
                    tokio::time::sleep(outages.next_delay()).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The value and version now; a missing counter is created at 0.
    async fn read(&self) -> Result<(i64, u64)> {
        loop {
            match self.coordinator.get(&self.path).await {
                Ok(node) => return Ok((self.parse(&node.data)?, node.stat.version)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            match self
                .coordinator
                .create(&self.path, b"0", CreateMode::Persistent)
                .await
            {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e.into()),
                _ => {}
            }
        }
    }

    /// The value a receipt recorded; `None` if it is gone already.
    async fn read_receipt(&self, receipt: &NodePath) -> Result<Option<i64>> {
        let mut outages = Backoff::default();
        loop {
            match self.coordinator.get(receipt).await {
                Ok(node) => return self.parse(&node.data).map(Some),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) if e.is_retryable() => tokio::time::sleep(outages.next_delay()).await,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn discard(&self, receipt: &NodePath) {
        match self.coordinator.delete(receipt, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                delete_in_background(self.coordinator.clone(), receipt.clone());
            }
            _ => {}
        }
    }

    fn parse(&self, data: &[u8]) -> Result<i64> {
        if data.is_empty() {
            // Made as a parent by someone's create: nothing added yet.
            return Ok(0);
        }
        std::str::from_utf8(data)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| Error::Conflict {
                path: self.path.clone(),
                message: format!(
                    "holds {:?}, not a decimal integer",
                    String::from_utf8_lossy(&data[..data.len().min(64)])
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn concurrent_additions_are_all_counted() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/counter").unwrap();
        let counter = Counter::new(Arc::new(server.connect()), path.clone());
        assert_eq!(counter.get().await.unwrap(), 0);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let counter = Counter::new(Arc::new(server.connect()), path.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    counter.add(2).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(counter.get().await.unwrap(), 200);
        assert_eq!(counter.add(-1).await.unwrap(), 199);
        assert!(
            counter
                .coordinator
                .children(&path)
                .await
                .unwrap()
                .is_empty(),
            "no receipt left"
        );
        counter
            .coordinator
            .set(&path, b"not a number", None)
            .await
            .unwrap();
        assert!(matches!(counter.add(1).await, Err(Error::Conflict { .. })));
    }
}
