//! Writes that commit in a coordinator transaction of the caller's: the
//! blob goes first, as for every write, then the record operation runs in
//! one transaction with whatever else must hold or change with it (the
//! environment model commits all the views a write rebuilds this way).

use bytes::Bytes;

use super::name::ConfigName;
use super::record::{ChangeInfo, ConfigRecord, SourceVersion};
use super::store::{now_ms, sha256_hex, versions_dir, ConfigStore};
use crate::coordinator::{CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

/// A version whose content blob is in the blob store and whose record is
/// not committed yet: [`ConfigStore::commit`] commits it, with other
/// operations, in one transaction. Dropping it leaves an orphan blob, which
/// `gc` removes, and changes nothing else.
#[derive(Debug, Clone)]
pub struct PreparedWrite {
    pub(super) name: ConfigName,
    pub(super) record: ConfigRecord,
    pub(super) content: Bytes,
    /// The node version the record replaces; `None` creates the node.
    pub(super) expected_node_version: Option<u64>,
}

impl PreparedWrite {
    /// The config written.
    pub fn name(&self) -> &ConfigName {
        &self.name
    }

    /// The record the commit will store.
    pub fn record(&self) -> &ConfigRecord {
        &self.record
    }

    /// The content, as put in the blob store.
    pub fn content(&self) -> &Bytes {
        &self.content
    }

    /// Records what the content was computed from.
    pub fn with_sources(mut self, sources: Vec<SourceVersion>) -> Self {
        self.record.sources = sources;
        self
    }

    /// The coordinator operation that commits the record: a
    /// compare-and-set of the node, or its creation.
    pub fn op(&self) -> Op {
        let path = self.name.node_path().clone();
        let data = self.record.to_json();
        match self.expected_node_version {
            Some(version) => Op::Set {
                path,
                data,
                expected_version: Some(version),
            },
            None => Op::Create {
                path,
                data,
                mode: CreateMode::Persistent,
            },
        }
    }
}

/// A fresh random write id: 128 bits, hex.
pub(super) fn new_write_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A record created where one already exists lost a race: the writer
/// expected a new config, so it is a conflict like a stale version.
pub(super) fn record_exists_is_a_conflict(name: &ConfigName, e: Error) -> Error {
    if e.kind() == ErrorKind::AlreadyExists {
        let index = e.operation_index();
        let conflict = Error::new(
            ErrorKind::BadVersion,
            format!("{name} already exists (the write expected a new config)"),
        );
        match index {
            Some(index) => conflict.at_operation(index),
            None => conflict,
        }
    } else {
        e
    }
}

impl ConfigStore {
    /// Puts the content blob of the next version of `name` (after
    /// `expected`, the current record and its node version; `None` for a
    /// config not written yet) and returns the record to commit, without
    /// touching the coordinator.
    ///
    /// Errors: `TooLarge` over the size limit, before anything is written;
    /// blob store errors.
    pub async fn prepare_write(
        &self,
        name: &ConfigName,
        content: Bytes,
        change: &ChangeInfo,
        expected: Option<(&ConfigRecord, u64)>,
    ) -> Result<PreparedWrite> {
        self.prepare_write_with_id(name, content, change, expected, new_write_id())
            .await
    }

    /// [`prepare_write`](Self::prepare_write) with the write id of the
    /// caller's (an update keeps one id across its attempts).
    pub(super) async fn prepare_write_with_id(
        &self,
        name: &ConfigName,
        content: Bytes,
        change: &ChangeInfo,
        expected: Option<(&ConfigRecord, u64)>,
        write_id: String,
    ) -> Result<PreparedWrite> {
        if content.len() > self.max_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "{name} would be {} bytes, over the limit of {} bytes",
                    content.len(),
                    self.max_size
                ),
            ));
        }
        let version = expected.map(|(r, _)| r.version + 1).unwrap_or(1);
        let sha256 = sha256_hex(&content);
        let key = versions_dir(name)?.join(&format!("{version:010}-{sha256}"))?;
        let size = content.len() as u64;
        // The blob first: the record must never point at a missing blob.
        match self.blobs.put_if_absent(&key, content.clone()).await {
            Ok(()) => {}
            // Same version and same hash: the same bytes are already there.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let record = ConfigRecord {
            version,
            blob_key: key.as_str().to_owned(),
            sha256,
            size,
            author: change.author.clone(),
            message: change.message.clone(),
            timestamp_ms: now_ms(),
            sources: Vec::new(),
            write_id: Some(write_id),
            previous_write_id: expected.and_then(|(r, _)| r.write_id.clone()),
        };
        Ok(PreparedWrite {
            name: name.clone(),
            record,
            content,
            expected_node_version: expected.map(|(_, node_version)| node_version),
        })
    }

    /// Commits `writes` in one coordinator transaction, after `ops` (checks
    /// and changes of the caller's own): all of them or none. Returns the
    /// records committed, in the order of `writes`.
    ///
    /// A failed operation's error keeps its index in the whole transaction
    /// (`ops` first, then one per write); a record created where one
    /// already exists is `BadVersion`, as for [`write_if`](Self::write_if).
    /// A lost reply is resolved as for `write_if`, by the first write's
    /// record (the transaction applied all of them or none).
    pub async fn commit(
        &self,
        ops: Vec<Op>,
        writes: Vec<PreparedWrite>,
    ) -> Result<Vec<ConfigRecord>> {
        self.send_resolving(&ops, &writes).await?;
        // History entries are independent blobs: written side by side.
        let committed = writes.into_iter().map(|write| self.committed(write));
        Ok(futures::future::join_all(committed).await)
    }

    /// What follows a committed record: the content is remembered for
    /// `update`, and the history entry written (best effort; `history`
    /// fills in a missing entry for the current version).
    pub(super) async fn committed(&self, write: PreparedWrite) -> ConfigRecord {
        let PreparedWrite {
            name,
            record,
            content,
            ..
        } = write;
        self.remember_written(&name, &record, content);
        if let Err(e) = self.record_history(&name, &record).await {
            tracing::warn!(config = %name, version = record.version, error = %e, "could not record history");
        }
        record
    }
}
