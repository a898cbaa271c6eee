//! Watches: one poller per coordinator reads the revision log after
//! `PRAGMA data_version` says another connection committed, and fans the
//! changes out to this coordinator's watches.

use std::sync::Arc;

use kingpin_api::{
    watch_channel, NodePath, Result, WatchEvent, WatchKind, WatchSender, WatchStream,
};
use rusqlite::Connection;

use crate::error::from_sqlite;
use crate::schema::{self, CREATED, DATA_CHANGED, DELETED};
use crate::session::{lock, Shared};

/// Rows read per poll at most; a larger backlog is read over several polls.
const BATCH: i64 = 10_000;

/// This coordinator's watches and how far into the log they have been fed.
#[derive(Debug)]
pub(crate) struct WatchRegistry {
    last_seen: i64,
    watchers: Vec<Watcher>,
}

#[derive(Debug)]
struct Watcher {
    path: NodePath,
    kind: WatchKind,
    /// The database revision when the watch was made: older changes are
    /// not its business.
    from_revision: i64,
    sender: WatchSender,
}

impl WatchRegistry {
    pub(crate) fn new(last_seen: i64) -> Self {
        WatchRegistry {
            last_seen,
            watchers: Vec::new(),
        }
    }

    fn dispatch(&self, revision: i64, path: &NodePath, kind: i64) {
        let parent = path.parent();
        for w in self.watchers.iter().filter(|w| revision > w.from_revision) {
            let event = if &w.path == path {
                match (kind, w.kind) {
                    (DELETED, _) => Some(WatchEvent::Deleted),
                    (CREATED, _) | (DATA_CHANGED, WatchKind::Data) => Some(WatchEvent::Changed),
                    _ => None,
                }
            } else if w.kind == WatchKind::Children
                && parent.as_ref() == Some(&w.path)
                && kind != DATA_CHANGED
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

    fn resync_all(&self) {
        for w in &self.watchers {
            w.sender.send(WatchEvent::Resync);
        }
    }
}

/// Adds a watch that reports every change after the database's current
/// revision.
pub(crate) async fn register(
    shared: &Arc<Shared>,
    path: NodePath,
    kind: WatchKind,
) -> Result<WatchStream> {
    let from_revision = shared
        .read(|conn, shared| {
            schema::meta(conn, "revision").map_err(|e| from_sqlite(e, shared.path()))
        })
        .await?;
    let (sender, stream) = watch_channel();
    let mut registry = lock(&shared.watches);
    registry.watchers.retain(|w| !w.sender.is_closed());
    // Changes the poller fed out between the read above and this push were
    // made before this call returned, which the contract allows to miss;
    // everything later reaches this watch.
    registry.watchers.push(Watcher {
        path,
        kind,
        from_revision,
        sender,
    });
    Ok(stream)
}

/// What one poll found.
struct Batch {
    data_version: i64,
    trimmed_through: i64,
    revision: i64,
    changes: Vec<(i64, String, i64)>,
}

fn read_batch(
    conn: &mut Connection,
    shared: &Shared,
    last_seen: i64,
    last_version: i64,
) -> Result<Option<Batch>> {
    let sql = |e| from_sqlite(e, shared.path());
    let data_version: i64 = conn
        .pragma_query_value(None, "data_version", |r| r.get(0))
        .map_err(sql)?;
    if data_version == last_version {
        return Ok(None);
    }
    // One read transaction: the log and the counters from the same snapshot.
    let tx = conn.transaction().map_err(sql)?;
    let revision = schema::meta(&tx, "revision").map_err(sql)?;
    let trimmed_through = schema::meta(&tx, "trimmed_through").map_err(sql)?;
    let mut statement = tx
        .prepare("SELECT rev, path, kind FROM changes WHERE rev > ?1 ORDER BY id LIMIT ?2")
        .map_err(sql)?;
    let changes = statement
        .query_map([last_seen, BATCH], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    drop(statement);
    tx.commit().map_err(sql)?;
    Ok(Some(Batch {
        data_version,
        trimmed_through,
        revision,
        changes,
    }))
}

/// Polls until shutdown; on shutdown drops every watch (their streams end).
pub(crate) async fn poll(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut generation = shared.generation.subscribe();
    let mut data_version = -1;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = shared.local_change.notified() => {}
            changed = generation.changed() => {
                if changed.is_ok() {
                    lock(&shared.watches).resync_all();
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => {
                lock(&shared.watches).watchers.clear();
                return;
            }
        }
        let last_seen = lock(&shared.watches).last_seen;
        let batch = shared
            .read(move |conn, shared| read_batch(conn, shared, last_seen, data_version))
            .await;
        let batch = match batch {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the SQLite change log");
                continue;
            }
        };
        let mut registry = lock(&shared.watches);
        registry.watchers.retain(|w| !w.sender.is_closed());
        if batch.trimmed_through > registry.last_seen {
            // Changes we never saw were trimmed: nobody can tell what they were.
            tracing::warn!(
                last_seen = registry.last_seen,
                batch.trimmed_through,
                "change log trimmed past our watches; resyncing"
            );
            registry.resync_all();
            registry.last_seen = batch.revision;
            data_version = batch.data_version;
            continue;
        }
        let complete = (batch.changes.len() as i64) < BATCH;
        let mut newest = registry.last_seen;
        for (revision, path, kind) in &batch.changes {
            match NodePath::parse(path) {
                Ok(path) => registry.dispatch(*revision, &path, *kind),
                Err(_) => registry.resync_all(),
            }
            newest = newest.max(*revision);
        }
        if complete {
            registry.last_seen = newest.max(batch.revision);
            data_version = batch.data_version;
        } else if newest - 1 > registry.last_seen {
            // The batch may end inside a revision: read that one again
            // (repeated events are harmless, skipped ones are not).
            registry.last_seen = newest - 1;
        } else {
            // One revision larger than a batch: give up on detail.
            registry.resync_all();
            registry.last_seen = batch.revision;
            data_version = batch.data_version;
        }
    }
}
