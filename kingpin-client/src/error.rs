//! The one error type of the client library.

use std::path::PathBuf;

/// What a parser may fail with: any error, kept as the source of
/// [`Error::Parse`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a file could not be opened, read or parsed.
///
/// Reloads that fail never surface as errors to readers (they keep the last
/// good snapshot); they are reported through
/// [`ConfigFile::last_error`](crate::ConfigFile::last_error). `Error` values
/// come from opening a file and from
/// [`ConfigFile::reload_now`](crate::ConfigFile::reload_now).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config or serverset name that is not a plain file name; nothing
    /// was read.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file could not be read (missing, no permission, ...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read, but its content does not parse.
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: BoxError,
    },
    /// The content parses, but was refused as an update of the current
    /// snapshot (an emptied serverset, for one).
    #[error("refused the update of {}: {reason}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why the update was refused.
        reason: String,
    },
    /// The directory of the file cannot be watched for changes.
    #[error("cannot watch {} for changes: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What the file system notifier said.
        #[source]
        source: notify::Error,
    },
    /// Content not in the expected format, before any file is involved
    /// (see [`Decider::from_json`](crate::Decider::from_json)).
    #[error("{message}")]
    Content {
        /// What is wrong with the content.
        message: String,
    },
}

impl Error {
    /// Whether this is a file that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    pub(crate) fn content(message: impl Into<String>) -> Self {
        Error::Content {
            message: message.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
