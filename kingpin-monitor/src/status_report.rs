//! Reporting what this host has synced to the ephemeral node
//! `/status/<host>` (see `kingpin_api::status`), at most once per
//! `status_interval`, for the console's "who has which version".

use std::sync::Arc;

use futures::StreamExt;
use kingpin_api::environment::{EnvPath, HostId, ServiceName};
use kingpin_api::status::{status_path, HostStatus, SyncedEntry};
use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath, SessionEvent};

use crate::settings::MonitorSettings;
use crate::state::{now_ms, MonitorState};

/// Writes a report whenever the state changed since the last one, no more
/// often than `settings.status_interval`, and again after the session was
/// replaced (its ephemeral node went with the old session).
pub(crate) async fn report_status(
    coordinator: Arc<dyn Coordinator>,
    settings: Arc<MonitorSettings>,
    host: HostId,
    state: Arc<MonitorState>,
) {
    let path = match status_path(&host) {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!(error = %e, "cannot report status under this host's name");
            return;
        }
    };
    let mut changes = state.subscribe();
    let mut sessions = coordinator.session_events();
    let mut last: Option<Vec<SyncedEntry>> = None;
    loop {
        let entries = entries(&state);
        if last.as_ref() != Some(&entries) {
            let report = HostStatus {
                host: host.as_str().to_owned(),
                reported_ms: now_ms(),
                entries: entries.clone(),
                truncated: 0,
            };
            match write(coordinator.as_ref(), &path, &report.to_json()).await {
                Ok(()) => last = Some(entries),
                Err(e) => tracing::warn!(%path, error = %e, "cannot report status; trying again"),
            }
        }
        tokio::time::sleep(settings.status_interval).await;
        // Wait for something to report: a change, or a new session.
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            event = sessions.next() => match event {
                Some(SessionEvent::Connected) => last = None,
                Some(_) => {}
                None => return,
            },
        }
    }
}

/// The state as report entries; an environment is reported under the
/// view config it has on disk, which is what the console shows.
fn entries(state: &MonitorState) -> Vec<SyncedEntry> {
    let mut entries: Vec<SyncedEntry> = state
        .entries()
        .into_iter()
        .map(|(name, entry)| {
            let view = entry.environment.as_deref().and_then(|env| {
                let service = name.as_str().strip_prefix("environments.")?;
                let service = ServiceName::parse(service).ok()?;
                service.view_config(&EnvPath::parse(env).ok()?).ok()
            });
            SyncedEntry {
                name: view.map_or_else(|| name.as_str().to_owned(), |v| v.as_str().to_owned()),
                version: entry.version,
                synced_ms: entry.last_fetch_ms,
                error: entry.error.or(entry.refused),
            }
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// Sets the node, or creates it (ephemeral) when this session has none; a
/// node left by an earlier session of this host is replaced.
async fn write(
    coordinator: &dyn Coordinator,
    path: &NodePath,
    data: &[u8],
) -> kingpin_api::Result<()> {
    match coordinator.get(path).await {
        Ok(node)
            if node.stat.ephemeral_owner.is_some()
                && node.stat.ephemeral_owner == coordinator.session_id() =>
        {
            coordinator
                .set(path, data, Some(node.stat.version))
                .await
                .map(|_| ())
        }
        Ok(node) => {
            coordinator.delete(path, Some(node.stat.version)).await?;
            coordinator
                .create(path, data, CreateMode::Ephemeral)
                .await
                .map(|_| ())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => coordinator
            .create(path, data, CreateMode::Ephemeral)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}
