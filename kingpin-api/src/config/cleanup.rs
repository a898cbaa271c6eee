//! Removing what a config no longer needs: old versions (`gc`) and, once
//! its record is gone, everything it left in the blob store (`purge`).

use super::name::ConfigName;
use super::record::ConfigRecord;
use super::store::{blob_version, history_dir, versions_dir, ConfigStore, GcReport};
use crate::error::{Error, ErrorKind, Result};

impl ConfigStore {
    /// Deletes content blobs and history of all but the newest `keep`
    /// versions, and orphan blobs of lost races. The current version's blob
    /// is never deleted, nor any blob newer than it (a write in flight).
    pub async fn gc(&self, name: &ConfigName, keep: usize) -> Result<GcReport> {
        let Some((current, _)) = self.record(name).await? else {
            return Ok(GcReport::default());
        };
        let keep = keep.max(1) as u64;
        let oldest_kept = current.version.saturating_sub(keep - 1);
        let mut report = GcReport::default();
        let mut referenced = std::collections::HashSet::new();
        referenced.insert(current.blob_key.clone());
        for meta in self.blobs.list(Some(&history_dir(name)?)).await? {
            let json = self.blobs.get(&meta.key).await?;
            let record = ConfigRecord::from_json(&json, name.as_str())?;
            if record.version >= oldest_kept {
                referenced.insert(record.blob_key);
            } else if record.version < current.version {
                self.blobs.delete(&meta.key).await?;
                report.records_deleted += 1;
            }
        }
        for meta in self.blobs.list(Some(&versions_dir(name)?)).await? {
            let Some(version) = blob_version(&meta.key) else {
                continue;
            };
            if version > current.version || referenced.contains(meta.key.as_str()) {
                continue;
            }
            self.blobs.delete(&meta.key).await?;
            report.blobs_deleted += 1;
        }
        Ok(report)
    }

    /// Deletes every content blob and history record of a config whose
    /// record is gone (a deleted environment), so that a config created
    /// again under the same name starts a history of its own. Refused
    /// (`AlreadyExists`) while the record exists. Nested configs are not
    /// touched.
    pub async fn purge(&self, name: &ConfigName) -> Result<GcReport> {
        if self.record(name).await?.is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name} still exists; only a deleted config's blobs can be purged"),
            ));
        }
        let mut report = GcReport::default();
        for meta in self.blobs.list(Some(&history_dir(name)?)).await? {
            self.blobs.delete(&meta.key).await?;
            report.records_deleted += 1;
        }
        for meta in self.blobs.list(Some(&versions_dir(name)?)).await? {
            self.blobs.delete(&meta.key).await?;
            report.blobs_deleted += 1;
        }
        Ok(report)
    }
}
