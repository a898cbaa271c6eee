//! Where a config or serverset lives on disk: a directory plus a plain file
//! name, checked before any I/O so a name can never reach outside the
//! directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory the monitor writes configs to (KingPin's).
pub const DEFAULT_CONFIG_DIR: &str = "/var/config";

/// The directory the monitor writes serversets to (KingPin's).
pub const DEFAULT_SERVERSET_DIR: &str = "/var/serverset";

/// The path of the file `name` in `dir`, once `name` is known to be a plain
/// file name: not empty, not `.` or `..`, without `/`, `\` or NUL.
///
/// ```
/// use kingpin_client::file_in;
/// let path = file_in("/var/config", "config.manageddata.spam.blacklist")?;
/// assert_eq!(path.to_str(), Some("/var/config/config.manageddata.spam.blacklist"));
/// assert!(file_in("/var/config", "../etc/passwd").is_err());
/// # Ok::<(), kingpin_client::Error>(())
/// ```
pub fn file_in(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf> {
    check_file_name(name)?;
    Ok(dir.as_ref().join(name))
}

fn check_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it names a directory"
    } else if name.contains(['/', '\\']) {
        "it contains a path separator"
    } else if name.contains('\0') {
        "it contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_joined_to_the_directory() {
        let path = file_in("/var/serverset", "discovery.api.prod").unwrap();
        assert_eq!(path, Path::new("/var/serverset/discovery.api.prod"));
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "/abs", "../x", "a\\b", "nul\0byte"] {
            let err = file_in("/var/config", bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        }
    }
}
