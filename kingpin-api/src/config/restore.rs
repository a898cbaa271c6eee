//! Putting recorded versions back exactly as they were (a restore from a
//! backup, a migration to other backends): the same version numbers,
//! authors, messages, timestamps and sources, so history, rollback, view
//! sources and pinned versions mean what they meant.
//!
//! The order is the write path's: every version's content blob and
//! history entry first, the record node last, so a record never points at
//! a missing blob and a config whose node exists is complete.

use bytes::Bytes;

use super::name::ConfigName;
use super::record::ConfigRecord;
use super::store::{history_key, sha256_hex, versions_dir, ConfigStore};
use crate::blob::BlobKey;
use crate::coordinator::CreateMode;
use crate::error::{Error, ErrorKind, Result};

impl ConfigRecord {
    /// Checks that this record can be a version of `name`: its blob key is
    /// the one the store gives that version and sha256
    /// (`<prefix>/@versions/<version>-<sha256>`), and the sha256 is 64
    /// lowercase hex digits. Remote or archived records are checked so
    /// before anything is written from them.
    pub fn check_belongs_to(&self, name: &ConfigName) -> Result<()> {
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(Error::invalid(format!(
                "{name} version {}: sha256 {:?} is not 64 lowercase hex digits",
                self.version, self.sha256
            )));
        }
        if self.version == 0 {
            return Err(Error::invalid(format!(
                "{name}: version 0 does not exist (versions start at 1)"
            )));
        }
        let expected = version_key(name, self.version, &self.sha256)?;
        if self.blob_key != expected.as_str() {
            return Err(Error::invalid(format!(
                "{name} version {}: blob key {:?} is not {expected}",
                self.version, self.blob_key
            )));
        }
        Ok(())
    }
}

/// Where the store keeps the content of `name` at `version` with `sha256`.
fn version_key(name: &ConfigName, version: u64, sha256: &str) -> Result<BlobKey> {
    versions_dir(name)?.join(&format!("{version:010}-{sha256}"))
}

impl ConfigStore {
    /// Puts the content of one recorded version of `name` back, at the
    /// record's blob key. The record is checked against the name
    /// ([`ConfigRecord::check_belongs_to`]) and the content against the
    /// record's sha256 and size before anything is written. Idempotent: a
    /// blob already there with the same content is fine; one with other
    /// content is `AlreadyExists` (nothing is overwritten, ever).
    ///
    /// Restore every version's content and history entry
    /// ([`restore_history`](Self::restore_history)) before the record node
    /// ([`restore_record`](Self::restore_record)).
    pub async fn restore_content(
        &self,
        name: &ConfigName,
        record: &ConfigRecord,
        content: Bytes,
    ) -> Result<()> {
        record.check_belongs_to(name)?;
        let sha = sha256_hex(&content);
        if sha != record.sha256 || content.len() as u64 != record.size {
            return Err(Error::invalid(format!(
                "{name} version {}: the content given ({} bytes, sha256 {sha}) is not the recorded one ({} bytes, sha256 {})",
                record.version,
                content.len(),
                record.size,
                record.sha256
            )));
        }
        self.put_same(&record.blob()?, content, |existing| {
            sha256_hex(existing) == record.sha256
        })
        .await
    }

    /// Puts one version's record back as its history entry; idempotent,
    /// and never overwriting another entry (`AlreadyExists`).
    pub async fn restore_history(&self, name: &ConfigName, record: &ConfigRecord) -> Result<()> {
        record.check_belongs_to(name)?;
        let entry = history_key(name, record.version)?;
        self.put_same(&entry, record.to_json().into(), |existing| {
            ConfigRecord::from_json(existing, name.as_str())
                .ok()
                .as_ref()
                == Some(record)
        })
        .await
    }

    /// Whether [`restore_content`](Self::restore_content) and
    /// [`restore_history`](Self::restore_history) of `record` could run without meeting another object at its keys: `Ok` when neither
    /// the content blob nor the history entry exists, or each holds what
    /// the restore would put; `AlreadyExists` naming the key otherwise.
    /// Reads only.
    pub async fn check_restorable(&self, name: &ConfigName, record: &ConfigRecord) -> Result<()> {
        record.check_belongs_to(name)?;
        let key = record.blob()?;
        if let Some(existing) = self.existing_blob(&key).await? {
            if sha256_hex(&existing) != record.sha256 {
                return Err(other_object(&key));
            }
        }
        let entry = history_key(name, record.version)?;
        if let Some(existing) = self.existing_blob(&entry).await? {
            if ConfigRecord::from_json(&existing, name.as_str())
                .ok()
                .as_ref()
                != Some(record)
            {
                return Err(other_object(&entry));
            }
        }
        Ok(())
    }

    /// Creates `name`'s record node holding `record`, the newest version
    /// restored. `AlreadyExists` when the config exists. Restore every
    /// version first: the record must never point at a missing blob.
    pub async fn restore_record(&self, name: &ConfigName, record: &ConfigRecord) -> Result<()> {
        record.check_belongs_to(name)?;
        self.coordinator
            .create(name.node_path(), &record.to_json(), CreateMode::Persistent)
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{name} already exists; its record was left as it is"),
                    )
                } else {
                    e
                }
            })
    }

    async fn existing_blob(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        match self.blobs.get(key).await {
            Ok(existing) => Ok(Some(existing)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts `data` at `key` unless an object is there; one that is there
    /// must be `same` as what would have been put.
    async fn put_same(
        &self,
        key: &BlobKey,
        data: Bytes,
        same: impl Fn(&Bytes) -> bool,
    ) -> Result<()> {
        match self.blobs.put_if_absent(key, data).await {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                match self.existing_blob(key).await? {
                    Some(existing) if same(&existing) => Ok(()),
                    // Deleted in between: nothing to compare, and nothing of
                    // ours overwritten; a retry puts it.
                    None => Err(Error::unavailable(format!(
                        "blob {key} vanished while it was being restored; try again"
                    ))),
                    Some(_) => Err(other_object(key)),
                }
            }
            other => other,
        }
    }
}

fn other_object(key: &BlobKey) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("blob {key} already exists with other content; nothing was overwritten"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ChangeInfo;
    use crate::memory::{MemoryBlobStore, MemoryServer};

    fn store() -> ConfigStore {
        ConfigStore::new(
            Arc::new(MemoryServer::new().connect()),
            Arc::new(MemoryBlobStore::new()),
        )
    }

    #[tokio::test]
    async fn versions_come_back_exactly_and_the_record_last() {
        let (source, target) = (store(), store());
        let name = ConfigName::parse("config.app.limits").unwrap();
        for (content, message) in [("one", "first"), ("two", "second"), ("three", "third")] {
            source
                .write(
                    &name,
                    Bytes::from(content),
                    &ChangeInfo::new("ann", message),
                )
                .await
                .unwrap();
        }
        let history = source.history(&name).await.unwrap();
        for record in &history {
            let content = source.content(&name, record).await.unwrap();
            target.check_restorable(&name, record).await.unwrap();
            target
                .restore_content(&name, record, content.clone())
                .await
                .unwrap();
            target.restore_history(&name, record).await.unwrap();
            // Again: idempotent.
            target
                .restore_content(&name, record, content)
                .await
                .unwrap();
            target.restore_history(&name, record).await.unwrap();
        }
        assert!(target.read(&name).await.unwrap().is_none(), "no record yet");
        let current = history.last().unwrap();
        target.restore_record(&name, current).await.unwrap();
        assert_eq!(target.history(&name).await.unwrap(), history);
        let read = target.read(&name).await.unwrap().unwrap();
        assert_eq!(
            (read.record, read.content),
            (current.clone(), Bytes::from("three"))
        );
        let err = target.restore_record(&name, current).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        // The next write continues the history.
        let next = target
            .write(&name, Bytes::from("four"), &ChangeInfo::new("bob", "after"))
            .await
            .unwrap();
        assert_eq!(next.version, 4);
    }

    #[tokio::test]
    async fn forged_records_and_wrong_content_are_refused_before_any_write() {
        let (source, target) = (store(), store());
        let name = ConfigName::parse("config.x").unwrap();
        let record = source
            .write(&name, Bytes::from("data"), &ChangeInfo::new("ann", "m"))
            .await
            .unwrap();
        let err = target
            .restore_content(&name, &record, Bytes::from("evil"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let other = ConfigName::parse("config.y").unwrap();
        let err = target
            .restore_content(&other, &record, Bytes::from("data"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("is not config/y/@versions"),
            "{err}"
        );
        let mut zero = record.clone();
        zero.version = 0;
        assert!(zero.check_belongs_to(&name).is_err());
        assert!(target.blobs.list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn another_object_at_a_key_is_never_overwritten() {
        let (source, target) = (store(), store());
        let name = ConfigName::parse("config.x").unwrap();
        let record = source
            .write(&name, Bytes::from("data"), &ChangeInfo::new("ann", "m"))
            .await
            .unwrap();
        // The target already has a history entry for version 1 that says
        // something else.
        let mut other = record.clone();
        other.message = "another namespace".to_owned();
        target
            .blobs
            .put_if_absent(&history_key(&name, 1).unwrap(), other.to_json().into())
            .await
            .unwrap();
        let err = target.check_restorable(&name, &record).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        target
            .restore_content(&name, &record, Bytes::from("data"))
            .await
            .unwrap();
        let err = target.restore_history(&name, &record).await.unwrap_err();
        assert!(err.to_string().contains("other content"), "{err}");
    }
}
