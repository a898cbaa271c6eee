//! Watches: one persistent watch (ZooKeeper 3.6+ `addWatch`) per stream.
//!
//! A persistent watch stays armed after it fires, so an event is reported
//! the moment it arrives and costs the server no re-arming request; one-shot
//! watches needed a round trip after every event before the consumer could
//! re-read. Events during a connection loss can still be lost
//! (ZOOKEEPER-4698), and a new session has no watches at all, so every gap
//! (reconnect or new session) re-adds the watch and reports `Resync`.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{
    watch_channel, Backoff, NodePath, WatchEvent, WatchKind, WatchSender, WatchStream,
};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::error::from_zk;
use crate::session::Shared;

/// Adds the watch, then follows the node in a task.
pub(crate) async fn start(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
) -> kingpin_api::Result<WatchStream> {
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let client = shared.client()?;
    let watcher = add_watch(&client, path.as_str())
        .await
        .map_err(|e| from_zk(e, path.as_str()))?;
    let (sender, stream) = watch_channel();
    tokio::spawn(follow(shared, path, kind, sender, watcher, generation));
    Ok(stream)
}

async fn add_watch(client: &zk::Client, path: &str) -> Result<zk::PersistentWatcher, zk::Error> {
    client.watch(path, zk::AddWatchMode::Persistent).await
}

/// What one server event means for a stream of `kind`; `None` when the
/// stream does not care (a persistent watch on a node reports both its data
/// and its children).
fn translate(kind: WatchKind, event: zk::EventType) -> Option<WatchEvent> {
    match (kind, event) {
        (_, zk::EventType::NodeDeleted) => Some(WatchEvent::Deleted),
        (_, zk::EventType::NodeCreated) => Some(WatchEvent::Changed),
        (WatchKind::Data, zk::EventType::NodeDataChanged) => Some(WatchEvent::Changed),
        (WatchKind::Children, zk::EventType::NodeChildrenChanged) => Some(WatchEvent::Changed),
        _ => None,
    }
}

enum Wake {
    Fired(zk::WatchedEvent),
    Gap,
}

async fn follow(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
    sender: WatchSender,
    watcher: zk::PersistentWatcher,
    mut generation: watch::Receiver<u64>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    // `None` after the session under the watcher ended: its watcher must
    // not be polled again, and the next generation brings a new one.
    let mut watcher = Some(watcher);
    loop {
        let wake = tokio::select! {
            event = next_event(&mut watcher) => Wake::Fired(event),
            changed = generation.changed() => match changed {
                Ok(()) => Wake::Gap,
                Err(_) => return,
            },
            _ = sender.closed() => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match wake {
            Wake::Fired(event) if event.event_type == zk::EventType::Session => {
                if event.session_state.is_terminated() {
                    watcher = None;
                }
                // Connection changes arrive as generation bumps too; the
                // gap is handled there.
            }
            Wake::Fired(event) => {
                if let Some(translated) = translate(kind, event.event_type) {
                    sender.send(translated);
                }
            }
            Wake::Gap => {
                // Re-added before reporting, so the consumer's re-read
                // happens under a live watch.
                let Some(next) = readd(&shared, &path, &mut generation, &mut shutdown).await else {
                    return;
                };
                watcher = Some(next);
                sender.send(WatchEvent::Resync);
            }
        }
    }
}

async fn next_event(watcher: &mut Option<zk::PersistentWatcher>) -> zk::WatchedEvent {
    match watcher {
        Some(watcher) => watcher.changed().await,
        None => std::future::pending().await,
    }
}

/// Adds the watch on the live client, waiting out disconnects and expiry.
/// `None` on shutdown.
async fn readd(
    shared: &Shared,
    path: &NodePath,
    generation: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<zk::PersistentWatcher> {
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(2));
    loop {
        if shared.is_shut_down() {
            return None;
        }
        // Mark gaps seen *before* taking the client: a new session that
        // appears after this point still wakes the follow loop, so a watch
        // added on a dying client is added again on its successor.
        generation.borrow_and_update();
        if let Ok(client) = shared.client() {
            match add_watch(&client, path.as_str()).await {
                Ok(watcher) => return Some(watcher),
                Err(e) => tracing::debug!(%path, error = %e, "cannot add ZooKeeper watch yet"),
            }
        }
        tokio::select! {
            _ = generation.changed() => {}
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
}
