//! What the monitor knows about each subscribed entry and about itself:
//! the source of the admin pages, health and metrics.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kingpin_api::metaconfig::MetaConfigKind;
use kingpin_api::ConfigName;
use serde::Serialize;

/// The state of one synced config or serverset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EntryStatus {
    /// `config` or `serverset`.
    pub kind: Option<MetaConfigKind>,
    /// The local file.
    pub file: String,
    /// The version on disk (configs).
    pub version: Option<u64>,
    /// sha256 of the file on disk.
    pub sha256: Option<String>,
    /// When the version on disk was written to the store (ms since epoch).
    pub last_change_ms: Option<u64>,
    /// When the store was last read successfully (ms since epoch).
    pub last_fetch_ms: Option<u64>,
    /// When the file was last written (ms since epoch).
    pub last_write_ms: Option<u64>,
    /// The last error, cleared by the next success.
    pub error: Option<String>,
    /// Serverset members written (serversets).
    pub members: Option<usize>,
    /// Why the newest serverset update was not written, while it is not;
    /// cleared when an update is accepted.
    pub refused: Option<String>,
    /// Serverset updates refused since the monitor started.
    pub refusals: u64,
    /// Why the guard's last refusal was overridden, if one was: an
    /// operator's acceptance or the hold time.
    pub accepted: Option<String>,
    /// The environment whose view is on disk (environments), e.g. `/prod`.
    pub environment: Option<String>,
    /// The view version this host is pinned to, if it is (environments).
    pub pinned_version: Option<u64>,
}

/// Ready, degraded (ready, with warnings), or not ready with the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Whether every subscribed entry is in sync and the coordinator is
    /// reachable: the health check passes (200) when it is.
    pub ready: bool,
    /// `ok`, `degraded` (ready, but something needs an operator: a
    /// refused serverset update) or `unhealthy` (not ready).
    pub status: &'static str,
    /// Why not ready, when not.
    pub reasons: Vec<String>,
    /// What needs an operator without failing the host: each refused
    /// serverset update, with why.
    pub warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    connected: bool,
    connect_error: Option<String>,
    subscription_error: Option<String>,
    subscribed_once: bool,
    dependencies: Vec<ConfigName>,
    missing: Vec<ConfigName>,
    entries: BTreeMap<ConfigName, EntryStatus>,
}

/// Shared, thread-safe monitor state.
#[derive(Debug)]
pub struct MonitorState {
    inner: Mutex<Inner>,
    // Bumped on every change, so callers can await one instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for MonitorState {
    fn default() -> Self {
        MonitorState {
            inner: Mutex::default(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MonitorState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the admin pages down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// A receiver that wakes on every change of the state.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Waits until `condition` holds for the state, checking after every
    /// change.
    pub async fn wait_for(&self, mut condition: impl FnMut(&MonitorState) -> bool) {
        let mut changes = self.subscribe();
        while !condition(self) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Records whether the coordinator and blob store are reachable.
    pub fn set_connected(&self, connected: bool, error: Option<String>) {
        {
            let mut inner = self.lock();
            inner.connected = connected;
            inner.connect_error = error;
        }
        self.changed();
    }

    /// Records a resolved subscription (or why it could not be resolved).
    pub fn set_subscription(&self, result: Result<(Vec<ConfigName>, Vec<ConfigName>), String>) {
        {
            let mut inner = self.lock();
            match result {
                Ok((dependencies, missing)) => {
                    inner.subscribed_once = true;
                    inner.subscription_error = None;
                    inner.dependencies = dependencies;
                    inner.missing = missing;
                }
                Err(e) => inner.subscription_error = Some(e),
            }
        }
        self.changed();
    }

    /// Updates one entry.
    pub fn update(&self, name: &ConfigName, change: impl FnOnce(&mut EntryStatus)) {
        change(self.lock().entries.entry(name.clone()).or_default());
        self.changed();
    }

    /// Forgets an entry no longer subscribed.
    pub fn remove(&self, name: &ConfigName) {
        self.lock().entries.remove(name);
        self.changed();
    }

    /// Every entry.
    pub fn entries(&self) -> BTreeMap<ConfigName, EntryStatus> {
        self.lock().entries.clone()
    }

    /// One entry.
    pub fn entry(&self, name: &ConfigName) -> Option<EntryStatus> {
        self.lock().entries.get(name).cloned()
    }

    /// The dependencies watched.
    pub fn dependencies(&self) -> Vec<ConfigName> {
        self.lock().dependencies.clone()
    }

    /// The oldest successful fetch among the entries: how stale the files
    /// may be.
    pub fn staleness(&self) -> Duration {
        let now = now_ms();
        let inner = self.lock();
        let oldest = inner
            .entries
            .values()
            .map(|e| e.last_fetch_ms.unwrap_or(0))
            .min();
        match oldest {
            Some(ms) if ms > 0 => Duration::from_millis(now.saturating_sub(ms)),
            Some(_) => Duration::from_millis(now),
            None => Duration::ZERO,
        }
    }

    /// Ready, or degraded with every reason.
    pub fn health(&self) -> Health {
        let inner = self.lock();
        let mut reasons = Vec::new();
        if !inner.connected {
            reasons.push(match &inner.connect_error {
                Some(e) => format!("coordinator or blob store unreachable: {e}"),
                None => "not connected to the coordinator yet".to_owned(),
            });
        }
        if let Some(e) = &inner.subscription_error {
            reasons.push(format!("subscription: {e}"));
        } else if !inner.subscribed_once {
            reasons.push("subscription not resolved yet".to_owned());
        }
        let mut warnings = Vec::new();
        for (name, entry) in &inner.entries {
            if let Some(e) = &entry.error {
                reasons.push(format!("{name}: {e}"));
            } else if let Some(refused) = &entry.refused {
                // The file keeps its members: the host serves as before.
                warnings.push(format!(
                    "{name}: update refused: {refused} (if the service is being retired: kingpin serverset accept-next {name})"
                ));
            } else if entry.last_fetch_ms.is_none() {
                reasons.push(format!("{name}: not synced yet"));
            }
        }
        let status = match (reasons.is_empty(), warnings.is_empty()) {
            (false, _) => "unhealthy",
            (true, false) => "degraded",
            (true, true) => "ok",
        };
        Health {
            ready: reasons.is_empty(),
            status,
            reasons,
            warnings,
        }
    }
}
