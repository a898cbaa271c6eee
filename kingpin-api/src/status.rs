//! Who has which version: what each host's monitor reports it has synced.
//!
//! A monitor that reports keeps one **ephemeral** node per host,
//! `/status/<host>`, holding a [`HostStatus`]: for every subscribed config
//! or serverset its version on disk, when it last synced and its last
//! error. The node lives as long as the monitor's session, so a host that
//! stops reporting disappears by itself. The console reads every node
//! under `/status` to show, per config, how many hosts are on each version
//! and which are behind or failing.

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::coordinator::{Coordinator, DEFAULT_MAX_DATA_SIZE};
use crate::environment::HostId;
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// The parent of every host's status node.
pub const STATUS_ROOT: &str = "/status";

/// Reports are kept below this size so they fit every coordinator's node
/// limit with room to spare; entries without an error are dropped first.
pub const MAX_STATUS_SIZE: usize = DEFAULT_MAX_DATA_SIZE * 9 / 10;

/// Status nodes read at once when reading every host.
const READ_CONCURRENCY: usize = 64;

/// What one host's monitor reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host's identity (its FQDN unless configured).
    pub host: String,
    /// When this report was written, in milliseconds since the Unix epoch.
    pub reported_ms: u64,
    /// Every subscribed config and serverset, sorted by name.
    pub entries: Vec<SyncedEntry>,
    /// Entries left out to keep the report under [`MAX_STATUS_SIZE`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One config or serverset as a host has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedEntry {
    /// The config or serverset name.
    pub name: String,
    /// The version on disk (configs and environment views); `None` for a
    /// serverset or a config not synced yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// When the store was last read successfully (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_ms: Option<u64>,
    /// The last error, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The status node of `host`: `/status/<host>`.
pub fn status_path(host: &HostId) -> Result<NodePath> {
    NodePath::parse(&format!("{STATUS_ROOT}/{}", host.as_str()))
}

impl HostStatus {
    /// The report as JSON, under [`MAX_STATUS_SIZE`]: when too large,
    /// entries without an error are left out (and counted in `truncated`)
    /// until it fits.
    pub fn to_json(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        if json.len() <= MAX_STATUS_SIZE {
            return json;
        }
        let mut kept = self.clone();
        // Failing entries are what an operator needs most; keep them.
        kept.entries.sort_by_key(|e| e.error.is_none());
        let average = json.len() / self.entries.len().max(1) + 1;
        let mut keep = (MAX_STATUS_SIZE / average).min(kept.entries.len());
        loop {
            kept.entries.truncate(keep);
            kept.truncated = self.entries.len() - keep;
            kept.entries.sort_by(|a, b| a.name.cmp(&b.name));
            let json = serde_json::to_vec(&kept).unwrap_or_default();
            if json.len() <= MAX_STATUS_SIZE || keep == 0 {
                return json;
            }
            keep = keep * 9 / 10;
            kept.entries.sort_by_key(|e| e.error.is_none());
        }
    }

    /// Parses a report read from a status node.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                "a host status node is not a kingpin status report",
            )
            .with_source(e)
        })
    }
}

/// Every host's report, sorted by host. Nodes that vanish while being read
/// (a monitor stopping) are skipped; an unreadable report is skipped with
/// a warning, never fatal to the others.
pub async fn read_all(coordinator: &dyn Coordinator) -> Result<Vec<HostStatus>> {
    let root = NodePath::parse(STATUS_ROOT)?;
    let hosts = match coordinator.children(&root).await {
        Ok(hosts) => hosts,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut reports: Vec<HostStatus> = stream::iter(hosts)
        .map(|host| {
            let root = &root;
            async move {
                let path = root.join(&host)?;
                match coordinator.get(&path).await {
                    Ok(node) => match HostStatus::from_json(&node.data) {
                        Ok(report) => Ok(Some(report)),
                        Err(e) => {
                            tracing::warn!(%path, error = %e, "skipping an unreadable status report");
                            Ok(None)
                        }
                    },
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_filter_map(|report| async move { Ok(report) })
        .try_collect()
        .await?;
    reports.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, error: bool) -> SyncedEntry {
        SyncedEntry {
            name: format!("config.manageddata.bench.item{i:06}"),
            version: Some(i as u64),
            synced_ms: Some(1_700_000_000_000),
            error: error.then(|| "blob missing".to_owned()),
        }
    }

    #[test]
    fn a_report_round_trips() {
        let report = HostStatus {
            host: "web-1.example.com".into(),
            reported_ms: 5,
            entries: vec![entry(1, false), entry(2, true)],
            truncated: 0,
        };
        assert_eq!(HostStatus::from_json(&report.to_json()).unwrap(), report);
    }

    #[test]
    fn an_oversized_report_keeps_its_errors_and_fits() {
        let entries: Vec<_> = (0..20_000).map(|i| entry(i, i % 1000 == 0)).collect();
        let report = HostStatus {
            host: "big".into(),
            reported_ms: 1,
            entries,
            truncated: 0,
        };
        let json = report.to_json();
        assert!(json.len() <= MAX_STATUS_SIZE, "{}", json.len());
        let read = HostStatus::from_json(&json).unwrap();
        assert_eq!(read.entries.len() + read.truncated, 20_000);
        assert_eq!(
            read.entries.iter().filter(|e| e.error.is_some()).count(),
            20
        );
        assert!(read.entries.windows(2).all(|w| w[0].name < w[1].name));
    }
}
