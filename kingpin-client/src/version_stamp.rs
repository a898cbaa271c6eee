//! Version stamps: which config version a local file holds.
//!
//! The files carry a config's content only, exactly as it was published.
//! Beside each config file `dir/name` the monitor keeps a stamp,
//! `dir/.versions/name`: one JSON object naming the version and the sha256
//! of that version's content,
//!
//! ```json
//! {"version":7,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
//! ```
//!
//! The monitor replaces the stamp (atomically) before it replaces the file,
//! so a reader that reloads because the file changed finds the stamp for
//! that content. A stamp is believed only for the content whose digest it
//! names: after a write that failed half way, or for a file edited by hand,
//! the version is unknown rather than wrong.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The directory, inside a config directory, that holds the stamps.
pub const STAMP_DIR: &str = ".versions";

/// The version a local config file holds, and the digest of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionStamp {
    /// The config's version.
    pub version: u64,
    /// The sha256 of that version's content, lowercase hex.
    pub sha256: String,
}

impl VersionStamp {
    /// Where the stamp of the file `dir/file_name` is.
    pub fn path(dir: &Path, file_name: &str) -> PathBuf {
        dir.join(STAMP_DIR).join(file_name)
    }

    /// The stamp of `dir/file_name`, `None` when there is none or it does
    /// not parse (an unknown version, not an error: files written by hand
    /// or by an older monitor have no stamp).
    pub fn read(dir: &Path, file_name: &str) -> Option<Self> {
        let content = std::fs::read(Self::path(dir, file_name)).ok()?;
        serde_json::from_slice(&content).ok()
    }

    /// The stamp as the monitor writes it.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of a number and a string always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The version, if this stamp is for `content`.
    pub fn version_of(&self, content_sha256: &str) -> Option<u64> {
        (self.sha256 == content_sha256).then_some(self.version)
    }
}

/// The sha256 of `content` in lowercase hex, as stamps name it.
pub fn content_sha256(content: &[u8]) -> String {
    format!("{:x}", Sha256::digest(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_names_its_version_only_for_its_content() {
        let stamp = VersionStamp {
            version: 7,
            sha256: content_sha256(b"[1]"),
        };
        assert_eq!(stamp.version_of(&content_sha256(b"[1]")), Some(7));
        assert_eq!(stamp.version_of(&content_sha256(b"[2]")), None);
    }

    #[test]
    fn reads_what_the_monitor_writes_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(VersionStamp::read(dir.path(), "config.a"), None);
        let stamp = VersionStamp {
            version: 3,
            sha256: content_sha256(b"x"),
        };
        std::fs::create_dir(dir.path().join(STAMP_DIR)).unwrap();
        std::fs::write(VersionStamp::path(dir.path(), "config.a"), stamp.to_json()).unwrap();
        assert_eq!(VersionStamp::read(dir.path(), "config.a"), Some(stamp));
        std::fs::write(VersionStamp::path(dir.path(), "config.a"), b"{\"version\":").unwrap();
        assert_eq!(VersionStamp::read(dir.path(), "config.a"), None);
    }

    #[test]
    fn a_snapshot_has_the_version_of_its_own_content() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = |version, content: &[u8]| {
            let stamp = VersionStamp {
                version,
                sha256: content_sha256(content),
            };
            std::fs::write(VersionStamp::path(dir.path(), "config.a"), stamp.to_json()).unwrap();
        };
        std::fs::create_dir(dir.path().join(STAMP_DIR)).unwrap();
        let path = dir.path().join("config.a");
        std::fs::write(&path, "[1]").unwrap();
        stamp(3, b"[1]");
        let file = crate::ConfigFile::open(&path, |c: &[u8]| serde_json::from_slice::<Vec<u8>>(c))
            .unwrap();
        assert_eq!(
            file.versioned_snapshot(),
            (std::sync::Arc::new(vec![1]), Some(3))
        );

        // New content whose stamp has not been written: the version is unknown,
        // never the old one.
        std::fs::write(&path, "[2]").unwrap();
        file.reload_now().unwrap();
        assert_eq!(
            file.versioned_snapshot(),
            (std::sync::Arc::new(vec![2]), None)
        );
        stamp(4, b"[2]");
        assert_eq!(file.versioned_snapshot().1, Some(4));

        // A stamp written ahead of content that has not landed is not believed.
        stamp(5, b"[3]");
        assert_eq!(file.versioned_snapshot().1, None);
    }
}
