//! The small JSON record a config's coordinator node holds.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKey;
use crate::error::{Error, ErrorKind, Result};

/// One version of a config: where its content is and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// 1 for the first write, +1 for each after.
    pub version: u64,
    /// The blob holding the content.
    pub blob_key: String,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// Content size in bytes.
    pub size: u64,
    /// Who wrote it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The configs, at their versions, this content was computed from
    /// (an environment's view names the environments it merged); empty
    /// for content written as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceVersion>,
    /// A random id the writer gave this write, so that a writer whose
    /// reply was lost (a leader election, a reset connection) can tell
    /// whether its write landed by reading the record again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
    /// The write id of the version this one replaced: a writer that lost
    /// its reply finds its write here when another writer was quicker to
    /// write the next version than it was to look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_write_id: Option<String>,
}

/// One config at one version: what a derived config was computed from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The config's name.
    pub config: String,
    /// Its version (the record's, not the node's).
    pub version: u64,
}

impl ConfigRecord {
    /// Parses a record read from the coordinator or the history.
    pub fn from_json(json: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("the record of {what} is not valid kingpin JSON"),
            )
            .with_source(e)
        })
    }

    /// The record as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record's blob key, validated.
    pub fn blob(&self) -> Result<BlobKey> {
        BlobKey::parse(&self.blob_key)
    }
}

/// Who makes a change, and why: kept with every version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeInfo {
    /// Who.
    pub author: String,
    /// Why.
    pub message: String,
}

impl ChangeInfo {
    /// A change by `author` with `message`.
    pub fn new(author: impl Into<String>, message: impl Into<String>) -> Self {
        ChangeInfo {
            author: author.into(),
            message: message.into(),
        }
    }
}
