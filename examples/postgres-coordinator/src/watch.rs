//! Watches: one `LISTEN` connection per coordinator receives the schema's
//! notifications and fans them out to this coordinator's watches.
//!
//! Missed notifications are detected, never assumed away: every committed
//! write takes the next revision and notifies at least once, and writes
//! commit in revision order, so the listener expects revision `n + 1` after
//! `n`. A larger jump, a lost listener connection (notifications sent
//! while it was down are gone), and a renewed session all report `Resync`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{
    watch_channel, Backoff, NodePath, Result, WatchEvent, WatchKind, WatchSender, WatchStream,
};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::error::from_pg;
use crate::nodes::{self, ChangeKind};
use crate::session::{lock, Shared};

/// This coordinator's watches.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    watchers: Vec<Watcher>,
}

#[derive(Debug)]
struct Watcher {
    path: NodePath,
    kind: WatchKind,
    /// The revision when the watch was made: older changes are not its
    /// business.
    from_revision: i64,
    sender: WatchSender,
}

impl WatchRegistry {
    fn dispatch(&mut self, revision: i64, path: &NodePath, change: ChangeKind) {
        self.watchers.retain(|w| !w.sender.is_closed());
        let parent = path.parent();
        for w in self.watchers.iter().filter(|w| revision > w.from_revision) {
            let event = if &w.path == path {
                match (change, w.kind) {
                    (ChangeKind::Deleted, _) => Some(WatchEvent::Deleted),
                    (ChangeKind::Created, _) | (ChangeKind::DataChanged, WatchKind::Data) => {
                        Some(WatchEvent::Changed)
                    }
                    _ => None,
                }
            } else if w.kind == WatchKind::Children
                && parent.as_ref() == Some(&w.path)
                && change != ChangeKind::DataChanged
            {
                Some(WatchEvent::Changed)
            } else {
                None
            };
            if let Some(event) = event {
                w.sender.send(event);
            }
        }
    }

    pub(crate) fn resync_all(&self) {
        for w in &self.watchers {
            w.sender.send(WatchEvent::Resync);
        }
    }
}

/// Adds a watch that reports every change after the current revision.
pub(crate) async fn register(
    shared: &Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
) -> Result<WatchStream> {
    let schema = shared.config.schema.clone();
    let from_revision = shared
        .run("reading the revision", move |client| {
            Box::pin(async move { nodes::revision(client, &schema).await })
        })
        .await?;
    let (sender, stream) = watch_channel();
    lock(&shared.watches).watchers.push(Watcher {
        path,
        kind,
        from_revision,
        sender,
    });
    Ok(stream)
}

/// One notification, parsed: `"<revision> <kind> <path>"`.
fn parse(payload: &str) -> Option<(i64, ChangeKind, NodePath)> {
    let mut parts = payload.splitn(3, ' ');
    let revision = parts.next()?.parse().ok()?;
    let kind = ChangeKind::from_code(parts.next()?)?;
    let path = NodePath::parse(parts.next()?).ok()?;
    Some((revision, kind, path))
}

/// Listens until shutdown, reconnecting after a lost connection; on
/// shutdown drops every watch (their streams end).
pub(crate) async fn listen(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut first = true;
    loop {
        let session = tokio::select! {
            result = listen_once(&shared, first) => result,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match session {
            Ok(()) => backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            Err(e) => tracing::warn!(error = %e, "PostgreSQL listener connection lost"),
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    lock(&shared.watches).watchers.clear();
}

/// The `application_name` of a schema's listener connections.
pub fn listener_name(schema: &str) -> String {
    format!("kingpin listener {schema}")
}

/// One listener connection: `LISTEN`, read the revision, resync the
/// watches if this is a reconnect, then dispatch notifications until the
/// connection ends.
async fn listen_once(shared: &Shared, first: bool) -> Result<()> {
    let config = &shared.config;
    // Named, so an operator (or a test) can tell it in pg_stat_activity.
    let mut settings = config.connection.clone();
    settings.application_name(listener_name(&config.schema));
    let connecting = settings.connect(tokio_postgres::NoTls);
    let (client, mut connection) = tokio::time::timeout(config.operation_timeout, connecting)
        .await
        .map_err(|_| crate::error::timed_out("connecting the listener"))?
        .map_err(|e| from_pg(e, "connecting the listener"))?;
    // The connection must be polled for queries to progress; it hands the
    // notifications over to this task.
    let (notes, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL listener connection ended");
                    return;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    let setup = async {
        client
            .batch_execute(&format!("LISTEN \"{}\"", config.channel()))
            .await
            .map_err(|e| from_pg(e, "LISTEN"))?;
        nodes::revision(&client, &config.schema).await
    };
    let mut last = tokio::time::timeout(config.operation_timeout, setup)
        .await
        .map_err(|_| crate::error::timed_out("LISTEN"))??;
    if !first {
        // Whatever was notified while no listener was connected is lost.
        lock(&shared.watches).resync_all();
    }
    shared.listening.send_replace(true);
    let _not_listening = NotListeningOnDrop(&shared.listening);
    while let Some(payload) = received.recv().await {
        let Some((revision, kind, path)) = parse(&payload) else {
            tracing::warn!(payload, "unreadable notification; resyncing");
            lock(&shared.watches).resync_all();
            continue;
        };
        let mut registry = lock(&shared.watches);
        if revision > last + 1 {
            tracing::warn!(
                expected = last + 1,
                revision,
                "notifications missed; resyncing"
            );
            registry.resync_all();
        }
        last = last.max(revision);
        registry.dispatch(revision, &path, kind);
    }
    Err(kingpin_api::Error::unavailable(
        "the PostgreSQL listener connection ended",
    ))
}

struct NotListeningOnDrop<'a>(&'a tokio::sync::watch::Sender<bool>);

impl Drop for NotListeningOnDrop<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
