//! The channel behind every [`WatchStream`]: it never blocks the backend,
//! never grows without bound, and never drops a change silently.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::coordinator::{WatchEvent, WatchStream};

/// Events queued beyond this are collapsed into one `Resync`.
const MAX_QUEUED: usize = 64;

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<WatchEvent>>,
    notify: Notify,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
    receiver_dropped: Notify,
}

/// The backend's end of a watch.
#[derive(Debug)]
pub struct WatchSender {
    shared: Arc<Shared>,
}

/// Creates a watch channel: the backend keeps the sender, the caller gets
/// the stream.
pub fn watch_channel() -> (WatchSender, WatchStream) {
    let shared = Arc::new(Shared::default());
    let guard = ReceiverGuard(shared.clone());
    let stream = futures::stream::unfold(guard, |guard| async move {
        loop {
            let next = lock(&guard.0.queue).pop_front();
            if let Some(event) = next {
                return Some((event, guard));
            }
            if guard.0.sender_gone.load(Ordering::Acquire) {
                return None;
            }
            // notify_one stores a permit when nobody waits, so a send between
            // the check above and this await is not lost.
            guard.0.notify.notified().await;
        }
    });
    (WatchSender { shared }, Box::pin(stream))
}

impl WatchSender {
    /// Queues `event`. A `Changed` right behind an unread `Changed` adds
    /// nothing (the consumer re-reads once either way); past the queue limit
    /// everything unread becomes a single `Resync`.
    pub fn send(&self, event: WatchEvent) {
        {
            let mut queue = lock(&self.shared.queue);
            if queue.back() == Some(&event) && event != WatchEvent::Deleted {
                return;
            }
            if queue.len() >= MAX_QUEUED {
                queue.clear();
                queue.push_back(WatchEvent::Resync);
            } else {
                queue.push_back(event);
            }
        }
        self.shared.notify.notify_one();
    }

    /// Whether the consumer dropped its stream (the backend can stop).
    pub fn is_closed(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }

    /// Resolves once the consumer has dropped its stream.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.receiver_dropped.notified();
            tokio::pin!(notified);
            // Register before checking, so a drop in between still wakes us.
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for WatchSender {
    fn drop(&mut self) {
        self.shared.sender_gone.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }
}

struct ReceiverGuard(Arc<Shared>);

impl Drop for ReceiverGuard {
    fn drop(&mut self) {
        self.0.receiver_gone.store(true, Ordering::Release);
        self.0.receiver_dropped.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the queue inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn delivers_in_order_and_ends_when_sender_drops() {
        let (tx, mut rx) = watch_channel();
        tx.send(WatchEvent::Changed);
        tx.send(WatchEvent::Deleted);
        drop(tx);
        assert_eq!(rx.next().await, Some(WatchEvent::Changed));
        assert_eq!(rx.next().await, Some(WatchEvent::Deleted));
        assert_eq!(rx.next().await, None);
    }

    #[tokio::test]
    async fn coalesces_repeated_changes_and_collapses_overflow() {
        let (tx, mut rx) = watch_channel();
        tx.send(WatchEvent::Changed);
        tx.send(WatchEvent::Changed);
        tx.send(WatchEvent::Deleted);
        assert_eq!(rx.next().await, Some(WatchEvent::Changed));
        assert_eq!(rx.next().await, Some(WatchEvent::Deleted));
        for i in 0..200 {
            tx.send(if i % 2 == 0 {
                WatchEvent::Changed
            } else {
                WatchEvent::Deleted
            });
        }
        let mut seen = Vec::new();
        drop(tx);
        while let Some(e) = rx.next().await {
            seen.push(e);
        }
        assert!(seen.len() <= MAX_QUEUED);
        assert!(seen.contains(&WatchEvent::Resync), "{seen:?}");
    }

    #[tokio::test]
    async fn sender_learns_the_stream_was_dropped() {
        let (tx, rx) = watch_channel();
        assert!(!tx.is_closed());
        let waiter = tokio::spawn(async move {
            tx.closed().await;
            tx.is_closed()
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(waiter.await.unwrap());
    }
}
