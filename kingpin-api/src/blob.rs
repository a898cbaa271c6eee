//! The `BlobStore` trait: immutable objects under `/`-separated keys.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};

/// Longest accepted blob key, in bytes (S3 allows 1024).
pub const MAX_BLOB_KEY_LEN: usize = 1024;

/// A validated blob key: relative, `/`-separated components of
/// `[A-Za-z0-9._=+@:,-]`, no `.` or `..` component, at most 1024 bytes.
///
/// Keys map to object names on every backend, including a local file
/// system, so anything that could escape a directory or mean something to a
/// shell is refused when the key is parsed, before any I/O.
///
/// ```
/// use kingpin_api::BlobKey;
/// let key = BlobKey::parse("config/manageddata/spam/0000000003-ab12")?;
/// assert!(key.starts_with(&BlobKey::parse("config/manageddata")?));
/// assert!(BlobKey::parse("../etc/passwd").is_err());
/// # Ok::<(), kingpin_api::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Parses and validates a key.
    pub fn parse(key: &str) -> Result<Self> {
        let invalid = |why: String| Error::invalid(format!("blob key {key:?} is invalid: {why}"));
        if key.is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        if key.len() > MAX_BLOB_KEY_LEN {
            return Err(invalid(format!("it is over {MAX_BLOB_KEY_LEN} bytes")));
        }
        for component in key.split('/') {
            if component.is_empty() {
                return Err(invalid(
                    "empty component (leading, trailing or double '/')".to_owned(),
                ));
            }
            if component == "." || component == ".." {
                return Err(invalid(format!("component {component:?} is not allowed")));
            }
            if let Some(c) = component
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "._=+@:,-".contains(*c)))
            {
                return Err(invalid(format!("character {c:?} is not allowed")));
            }
        }
        Ok(BlobKey(key.to_owned()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/child`, with `child` validated as one or more components.
    pub fn join(&self, child: &str) -> Result<Self> {
        BlobKey::parse(&format!("{}/{child}", self.0))
    }

    /// Whether `self` is `prefix` or lies below it, component-wise
    /// (`a/bc` is not under `a/b`).
    pub fn starts_with(&self, prefix: &BlobKey) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for BlobKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BlobKey::parse(s)
    }
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its key.
    pub key: BlobKey,
    /// Its size in bytes.
    pub size: u64,
}

/// Immutable objects under `/`-separated keys (S3, a local directory, …).
///
/// Objects are written once and never overwritten, so no backend needs
/// conditional update, only conditional create.
///
/// # Contract
///
/// * Keys are [`BlobKey`]s, validated before any call.
/// * Errors use kingpin's [`Error`]: `NotFound`, `AlreadyExists`,
///   `Unavailable` (retryable) for an unreachable endpoint, `Unauthorized`
///   for refused credentials; messages name the endpoint or bucket and never
///   a secret.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `data` under `key` unless an object is there already, in which
    /// case it fails with `AlreadyExists` and leaves that object untouched.
    async fn put_if_absent(&self, key: &BlobKey, data: Bytes) -> Result<()>;

    /// The object's bytes. `NotFound` if there is none.
    async fn get(&self, key: &BlobKey) -> Result<Bytes>;

    /// Removes the object. Removing a missing object succeeds (deletes are
    /// idempotent, so garbage collection can be retried).
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Every object at or below `prefix` (component-wise), or all objects
    /// for `None`, sorted by key.
    async fn list(&self, prefix: Option<&BlobKey>) -> Result<Vec<BlobMeta>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn keys_are_validated_before_use() {
        for good in [
            "a",
            "a/b/c",
            "config/x.y/0000000001-deadbeef",
            "k=v+1@h:2,3",
        ] {
            assert_eq!(BlobKey::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(1025);
        for bad in [
            "",
            "/abs",
            "a/",
            "a//b",
            "../x",
            "a/./b",
            "a b",
            "a\\b",
            "a\0b",
            "é",
            "$(rm)",
            long.as_str(),
        ] {
            assert_eq!(
                BlobKey::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
        let prefix = BlobKey::parse("a/b").unwrap();
        assert!(BlobKey::parse("a/b/c").unwrap().starts_with(&prefix));
        assert!(!BlobKey::parse("a/bc").unwrap().starts_with(&prefix));
    }
}
