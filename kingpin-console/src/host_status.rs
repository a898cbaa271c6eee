//! Who has which version: the hosts' status reports (`/status/<host>`,
//! written by monitors with `report_status`), re-read in the background
//! and indexed by config.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use kingpin_api::status::{read_all, HostStatus};
use kingpin_api::{Coordinator, Result};

/// One host's view of one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVersion {
    /// The host.
    pub host: String,
    /// The version it has on disk.
    pub version: Option<u64>,
    /// When it last synced (ms since the epoch).
    pub synced_ms: Option<u64>,
    /// Its last error.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Index {
    hosts: BTreeMap<String, Arc<HostStatus>>,
    by_config: HashMap<String, Vec<HostVersion>>,
}

/// The hosts' reports, as last read.
#[derive(Debug)]
pub struct HostStatuses {
    coordinator: Arc<dyn Coordinator>,
    index: RwLock<Arc<Index>>,
}

impl HostStatuses {
    /// Nothing read yet.
    pub fn new(coordinator: Arc<dyn Coordinator>) -> Self {
        HostStatuses {
            coordinator,
            index: RwLock::default(),
        }
    }

    fn current(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads every report.
    pub async fn refresh(&self) -> Result<()> {
        let reports = read_all(self.coordinator.as_ref()).await?;
        let mut index = Index::default();
        for report in reports {
            for entry in &report.entries {
                index
                    .by_config
                    .entry(entry.name.clone())
                    .or_default()
                    .push(HostVersion {
                        host: report.host.clone(),
                        version: entry.version,
                        synced_ms: entry.synced_ms,
                        error: entry.error.clone(),
                    });
            }
            index.hosts.insert(report.host.clone(), Arc::new(report));
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(())
    }

    /// Every reporting host's report, by host.
    pub fn hosts(&self) -> Vec<Arc<HostStatus>> {
        self.current().hosts.values().cloned().collect()
    }

    /// One host's report.
    pub fn host(&self, host: &str) -> Option<Arc<HostStatus>> {
        self.current().hosts.get(host).cloned()
    }

    /// Every host that reported `config`, by host.
    pub fn of_config(&self, config: &str) -> Vec<HostVersion> {
        self.current()
            .by_config
            .get(config)
            .cloned()
            .unwrap_or_default()
    }

    /// How many hosts report at all.
    pub fn host_count(&self) -> usize {
        self.current().hosts.len()
    }
}

/// Hosts on each version of a config, newest first (`None`: not synced).
pub fn versions(hosts: &[HostVersion]) -> Vec<(Option<u64>, usize)> {
    let mut counts: BTreeMap<Option<u64>, usize> = BTreeMap::new();
    for host in hosts {
        *counts.entry(host.version).or_default() += 1;
    }
    counts.into_iter().rev().collect()
}
