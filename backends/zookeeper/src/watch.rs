//! Watches: ZooKeeper's one-shot watches, re-armed after every event and
//! after every gap (reconnect, new session).

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{
    watch_channel, Backoff, NodePath, WatchEvent, WatchKind, WatchSender, WatchStream,
};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::error::from_zk;
use crate::session::Shared;

/// Arms the first watch, then follows the node in a task.
pub(crate) async fn start(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
) -> kingpin_api::Result<WatchStream> {
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let client = shared.client()?;
    let (_, watcher) = arm(&client, path.as_str(), kind)
        .await
        .map_err(|e| from_zk(e, path.as_str()))?;
    let (sender, stream) = watch_channel();
    tokio::spawn(follow(shared, path, kind, sender, watcher, generation));
    Ok(stream)
}

/// Sets a one-shot watch; returns whether the node exists.
///
/// A children watch needs the node to exist; while it does not, an exists
/// watch waits for its creation instead.
async fn arm(
    client: &zk::Client,
    path: &str,
    kind: WatchKind,
) -> Result<(bool, zk::OneshotWatcher), zk::Error> {
    loop {
        match kind {
            WatchKind::Data => {
                let (stat, watcher) = client.check_and_watch_stat(path).await?;
                return Ok((stat.is_some(), watcher));
            }
            WatchKind::Children => match client.get_and_watch_children(path).await {
                Ok((_, _, watcher)) => return Ok((true, watcher)),
                Err(zk::Error::NoNode) => {
                    let (stat, watcher) = client.check_and_watch_stat(path).await?;
                    if stat.is_none() {
                        return Ok((false, watcher));
                    }
                    // Created in between: go back for a children watch.
                }
                Err(e) => return Err(e),
            },
        }
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
    mut watcher: zk::OneshotWatcher,
    mut generation: watch::Receiver<u64>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let wake = tokio::select! {
            event = watcher.changed() => Wake::Fired(event),
            changed = generation.changed() => match changed {
                Ok(()) => Wake::Gap,
                Err(_) => return,
            },
            _ = sender.closed() => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        // Re-arm before reporting: a change between the event and the
        // consumer's re-read then fires the new watch.
        let Some((exists, next)) =
            rearm(&shared, &path, kind, &mut generation, &mut shutdown).await
        else {
            return;
        };
        watcher = next;
        match wake {
            Wake::Gap => sender.send(WatchEvent::Resync),
            Wake::Fired(event) => match event.event_type {
                // The session ended under this watch; it is re-armed on the
                // new session, and whatever happened meanwhile is unknown.
                zk::EventType::Session => sender.send(WatchEvent::Resync),
                zk::EventType::NodeDeleted => {
                    sender.send(WatchEvent::Deleted);
                    if exists {
                        sender.send(WatchEvent::Changed);
                    }
                }
                _ => sender.send(WatchEvent::Changed),
            },
        }
    }
}

/// Re-arms on the live client, waiting out disconnects and expiry.
/// `None` on shutdown.
async fn rearm(
    shared: &Shared,
    path: &NodePath,
    kind: WatchKind,
    generation: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(bool, zk::OneshotWatcher)> {
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(2));
    loop {
        if shared.is_shut_down() {
            return None;
        }
        // Mark gaps seen *before* taking the client: a new session that
        // appears after this point still wakes the follow loop, so a watch
        // armed on a dying client is re-armed on its successor.
        generation.borrow_and_update();
        if let Ok(client) = shared.client() {
            match arm(&client, path.as_str(), kind).await {
                Ok(armed) => return Some(armed),
                Err(e) => tracing::debug!(%path, error = %e, "cannot re-arm ZooKeeper watch yet"),
            }
        }
        tokio::select! {
            _ = generation.changed() => {}
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
}
