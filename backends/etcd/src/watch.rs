//! Watches: etcd watch streams resumed from the last seen revision after a
//! disconnect; `Resync` with a fresh start after compaction.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse};
use kingpin_api::{
    watch_channel, Backoff, NodePath, Result, WatchEvent, WatchKind, WatchSender, WatchStream,
};

use crate::error::{from_etcd, resend_unsent};
use crate::session::Shared;

/// Starts following `path` from the store's current revision: every change
/// after this call returns is delivered, however late the etcd watch opens.
pub(crate) async fn start(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
) -> Result<WatchStream> {
    shared.check_open()?;
    let revision = current_revision(&shared).await?;
    Ok(start_at(shared, path, kind, revision))
}

/// Starts following `path` for changes after `revision`.
pub(crate) fn start_at(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
    revision: i64,
) -> WatchStream {
    let (sender, stream) = watch_channel();
    tokio::spawn(follow(shared, path, kind, sender, revision));
    stream
}

async fn current_revision(shared: &Shared) -> Result<i64> {
    let options = GetOptions::new().with_count_only();
    let key = shared.layout.node_key(&NodePath::root());
    let response = resend_unsent(|| {
        let (mut kv, key, options) = (shared.client.kv_client(), key.clone(), options.clone());
        async move { kv.get(key, Some(options)).await }
    })
    .await
    .map_err(|e| from_etcd(e, "reading the current revision"))?;
    Ok(response.header().map(|h| h.revision()).unwrap_or(0))
}

enum StreamEnd {
    /// Closed, shut down or the consumer left: stop.
    Stop,
    /// Disconnected: resume from the last revision.
    Resume,
    /// The revision we need was compacted away: start afresh.
    Compacted,
}

async fn follow(
    shared: Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
    sender: WatchSender,
    mut last_revision: i64,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        let end = tokio::select! {
            end = stream_events(&shared, &path, kind, &sender, &mut last_revision, &mut generation, &mut backoff) => end,
            _ = sender.closed() => StreamEnd::Stop,
            _ = shutdown.wait_for(|stop| *stop) => StreamEnd::Stop,
        };
        match end {
            StreamEnd::Stop => return,
            StreamEnd::Resume => {}
            StreamEnd::Compacted => {
                // Changes between our revision and the compaction are gone:
                // the consumer re-reads everything from here.
                tracing::warn!(%path, last_revision, "etcd compacted past this watch; resyncing");
                match current_revision(&shared).await {
                    Ok(revision) => {
                        last_revision = revision;
                        sender.send(WatchEvent::Resync);
                        continue;
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot read etcd's revision yet"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = sender.closed() => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Opens an etcd watch after `last_revision` and forwards its events until
/// it ends.
async fn stream_events(
    shared: &Shared,
    path: &NodePath,
    kind: WatchKind,
    sender: &WatchSender,
    last_revision: &mut i64,
    generation: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> StreamEnd {
    let node_key = shared.layout.node_key(path);
    let children = shared.layout.children_prefix(path);
    let options = WatchOptions::new()
        .with_start_revision(*last_revision + 1)
        .with_progress_notify();
    let mut watch_client = shared.client.watch_client();
    let mut stream = match watch_client
        .watch(node_key.clone(), Some(options.clone()))
        .await
    {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%path, error = %e, "cannot open etcd watch yet");
            return StreamEnd::Resume;
        }
    };
    if kind == WatchKind::Children
        && stream
            .watch(children.clone(), Some(options.with_prefix()))
            .await
            .is_err()
    {
        return StreamEnd::Resume;
    }
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            changed = generation.changed() => {
                if changed.is_err() {
                    return StreamEnd::Stop;
                }
                // A new session: nothing was lost here, but consumers treat a
                // new session as a gap on every backend.
                sender.send(WatchEvent::Resync);
                continue;
            }
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) | Err(_) => return StreamEnd::Resume,
        };
        backoff.reset();
        if response.compact_revision() > 0 {
            return StreamEnd::Compacted;
        }
        if response.canceled() {
            return StreamEnd::Resume;
        }
        forward(&response, &node_key, kind, sender, last_revision);
    }
}

fn forward(
    response: &WatchResponse,
    node_key: &[u8],
    kind: WatchKind,
    sender: &WatchSender,
    last_revision: &mut i64,
) {
    if response.events().is_empty() {
        // A progress notification: everything up to its revision was sent.
        if !response.created() {
            if let Some(header) = response.header() {
                *last_revision = (*last_revision).max(header.revision());
            }
        }
        return;
    }
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        *last_revision = (*last_revision).max(kv.mod_revision());
        let created = kv.version() == 1;
        let own = kv.key() == node_key;
        let out = match (event.event_type(), own, kind) {
            (EventType::Delete, true, _) => Some(WatchEvent::Deleted),
            (EventType::Put, true, WatchKind::Data) => Some(WatchEvent::Changed),
            (EventType::Put, true, WatchKind::Children) if created => Some(WatchEvent::Changed),
            (EventType::Delete, false, WatchKind::Children) => Some(WatchEvent::Changed),
            (EventType::Put, false, WatchKind::Children) if created => Some(WatchEvent::Changed),
            _ => None,
        };
        if let Some(out) = out {
            sender.send(out);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Compaction needs a real etcd: `KINGPIN_TEST_ETCD=host:port`.
    use super::*;
    use crate::{EtcdConfig, EtcdCoordinator};
    use futures::StreamExt;
    use kingpin_api::{Coordinator, CreateMode};

    #[tokio::test]
    async fn compaction_past_a_watch_gives_resync_then_events() {
        let Some(endpoint) = std::env::var("KINGPIN_TEST_ETCD")
            .ok()
            .filter(|e| !e.is_empty())
        else {
            if std::env::var("KINGPIN_TEST_SKIP_EXTERNAL").is_ok_and(|v| v == "1") {
                eprintln!("SKIPPED etcd::compaction_past_a_watch_gives_resync_then_events: no KINGPIN_TEST_ETCD");
                return;
            }
            panic!("this test needs a real etcd: set KINGPIN_TEST_ETCD (./scripts/test does) or KINGPIN_TEST_SKIP_EXTERNAL=1");
        };
        let prefix = format!("/kingpin-compaction-{}", std::process::id());
        let c = EtcdCoordinator::connect(EtcdConfig::new([endpoint]).with_prefix(&prefix).unwrap())
            .await
            .unwrap();
        let path = NodePath::parse("/node").unwrap();
        c.create(&path, b"0", CreateMode::Persistent).await.unwrap();
        let old = current_revision(&c.shared).await.unwrap();
        for i in 1..=5 {
            c.set(&path, format!("{i}").as_bytes(), None).await.unwrap();
        }
        let now = current_revision(&c.shared).await.unwrap();
        c.shared
            .client
            .kv_client()
            .compact(now, None)
            .await
            .unwrap();

        // A watch that last saw `old` resumes into the compacted range.
        let mut watch = start_at(c.shared.clone(), path.clone(), WatchKind::Data, old);
        let first = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .unwrap();
        assert_eq!(first, Some(WatchEvent::Resync));
        assert_eq!(
            c.get(&path).await.unwrap().data,
            b"5",
            "the re-read sees the latest value"
        );
        c.set(&path, b"6", None).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .unwrap();
        assert_eq!(next, Some(WatchEvent::Changed));
        c.close().await.unwrap();
    }
}
