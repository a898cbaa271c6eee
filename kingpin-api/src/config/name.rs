//! Config names, and what they map to.

use std::fmt;

use crate::blob::BlobKey;
use crate::error::{Error, Result};
use crate::path::NodePath;

/// Longest accepted config name, in bytes.
pub const MAX_CONFIG_NAME_LEN: usize = 255;

/// A validated config name such as `config.manageddata.spam.blacklist`:
/// lowercase `[a-z0-9_-]` components joined by `.`, at most 255 bytes.
///
/// The name becomes a coordinator path, a blob prefix and a local file
/// name, so anything else (`..`, `/`, NUL, an empty component, upper case)
/// is refused here, before any I/O.
///
/// ```
/// use kingpin_api::ConfigName;
/// let name = ConfigName::parse("config.manageddata.spam.blacklist")?;
/// assert_eq!(name.node_path().as_str(), "/config/manageddata/spam/blacklist");
/// assert_eq!(name.file_name(), "config.manageddata.spam.blacklist");
/// assert!(ConfigName::parse("config/../etc").is_err());
/// # Ok::<(), kingpin_api::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigName {
    name: String,
    // Derived from `name` once, at parse time.
    node_path: NodePath,
    blob_prefix: BlobKey,
}

impl ConfigName {
    /// Parses and validates a name.
    pub fn parse(name: &str) -> Result<Self> {
        let invalid =
            |why: String| Error::invalid(format!("config name {name:?} is invalid: {why}"));
        if name.is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        if name.len() > MAX_CONFIG_NAME_LEN {
            return Err(invalid(format!("it is over {MAX_CONFIG_NAME_LEN} bytes")));
        }
        for component in name.split('.') {
            if component.is_empty() {
                return Err(invalid(
                    "it has an empty component (leading, trailing or double '.')".to_owned(),
                ));
            }
            if let Some(c) = component
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
            {
                return Err(invalid(format!(
                    "character {c:?} is not allowed (only a-z, 0-9, '_', '-' and '.')"
                )));
            }
        }
        let node_path = NodePath::parse(&format!("/{}", name.replace('.', "/")))
            .map_err(|e| invalid(e.message().to_owned()))?;
        let blob_prefix =
            BlobKey::parse(&name.replace('.', "/")).map_err(|e| invalid(e.message().to_owned()))?;
        Ok(ConfigName {
            name: name.to_owned(),
            node_path,
            blob_prefix,
        })
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The coordinator node holding the config's record:
    /// `a.b.c` → `/a/b/c`.
    pub fn node_path(&self) -> &NodePath {
        &self.node_path
    }

    /// The blob prefix under which the config's versions live: `a/b/c`.
    pub fn blob_prefix(&self) -> &BlobKey {
        &self.blob_prefix
    }

    /// The local file name: the name itself.
    pub fn file_name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ConfigName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for ConfigName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.name, f)
    }
}

impl std::str::FromStr for ConfigName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ConfigName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn names_map_to_paths_keys_and_files() {
        let name = ConfigName::parse("config.manageddata.admin.decider").unwrap();
        assert_eq!(
            name.node_path().as_str(),
            "/config/manageddata/admin/decider"
        );
        assert_eq!(
            name.blob_prefix().as_str(),
            "config/manageddata/admin/decider"
        );
        assert_eq!(name.file_name(), "config.manageddata.admin.decider");
    }

    #[test]
    fn bad_names_are_refused() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a.",
            "A.b",
            "a/b",
            "a..",
            "../etc",
            "a\0b",
            "a b",
            "zookeeper.x",
            "é",
            long.as_str(),
        ] {
            assert_eq!(
                ConfigName::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
        for good in ["a", "config.x-y_z.1", "discovery.svc.prod"] {
            ConfigName::parse(good).unwrap();
        }
    }
}
