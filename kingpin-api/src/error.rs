//! The one error type every coordinator returns.

use std::fmt;

/// What went wrong, independent of the backend that reported it.
///
/// Callers branch on the kind, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The node (or one of its parents) does not exist.
    NotFound,
    /// A node already exists at the path.
    AlreadyExists,
    /// A compare-and-set saw a different version than expected.
    BadVersion,
    /// The node still has children and cannot be deleted.
    NotEmpty,
    /// The backend cannot be reached right now; retrying later may succeed.
    Unavailable,
    /// The session ended; the coordinator builds a new one by itself.
    SessionExpired,
    /// The payload exceeds the backend's size limit.
    TooLarge,
    /// The caller passed something malformed (a path, a URL, an option).
    InvalidArgument,
    /// The backend refused the credentials or the permission.
    Unauthorized,
    /// The backend cannot do this at all (see `Capabilities`).
    Unsupported,
    /// Any other failure reported by the backend.
    Backend,
}

impl ErrorKind {
    /// A short, stable, lowercase name (for logs and metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::BadVersion => "bad_version",
            ErrorKind::NotEmpty => "not_empty",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::SessionExpired => "session_expired",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Backend => "backend",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a coordinator: a [`kind`](Error::kind), a message naming what
/// it was about (usually the node path), and the backend's own error as its
/// `source()`.
///
/// Messages never contain credentials.
pub struct Error {
    kind: ErrorKind,
    message: String,
    operation_index: Option<usize>,
    source: Option<Source>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            operation_index: None,
            source: None,
        }
    }

    /// Attaches the backend's error, reachable through `source()`.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Records which operation of a transaction failed.
    pub fn at_operation(mut self, index: usize) -> Self {
        self.operation_index = Some(index);
        self
    }

    /// The same error without a transaction operation index, for the
    /// single-operation calls that backends run as one-operation
    /// transactions.
    pub fn without_operation_index(mut self) -> Self {
        self.operation_index = None;
        self
    }

    /// `NotFound` for `path`.
    pub fn not_found(path: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotFound, format!("node {path} does not exist"))
    }

    /// `AlreadyExists` for `path`.
    pub fn already_exists(path: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::AlreadyExists,
            format!("node {path} already exists"),
        )
    }

    /// `BadVersion` for `path`.
    pub fn bad_version(path: impl fmt::Display, expected: u64) -> Self {
        Error::new(
            ErrorKind::BadVersion,
            format!("node {path} is not at version {expected}"),
        )
    }

    /// `NotEmpty` for `path`.
    pub fn not_empty(path: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotEmpty, format!("node {path} has children"))
    }

    /// `TooLarge` for a payload of `size` bytes against `limit`.
    pub fn too_large(path: impl fmt::Display, size: usize, limit: usize) -> Self {
        Error::new(
            ErrorKind::TooLarge,
            format!("data for {path} is {size} bytes, over the limit of {limit} bytes"),
        )
    }

    /// `InvalidArgument` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// `Unavailable` with a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unavailable, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a failed transaction, the index of the operation that failed.
    pub fn operation_index(&self) -> Option<usize> {
        self.operation_index
    }

    /// Whether the same call may succeed if simply tried again later.
    ///
    /// `BadVersion` is not retryable as is: the caller must re-read first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unavailable | ErrorKind::SessionExpired
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.kind).field("message", &self.message);
        if let Some(index) = self.operation_index {
            s.field("operation_index", &index);
        }
        if let Some(source) = &self.source {
            s.field("source", source);
        }
        s.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind)?;
        if let Some(index) = self.operation_index {
            write!(f, "operation {index}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_are_transient_ones() {
        assert!(Error::unavailable("down").is_retryable());
        assert!(Error::new(ErrorKind::SessionExpired, "x").is_retryable());
        assert!(!Error::bad_version("/a", 1).is_retryable());
        assert!(!Error::not_found("/a").is_retryable());
    }

    #[test]
    fn display_names_kind_operation_and_source() {
        let io = std::io::Error::other("reset");
        let err = Error::bad_version("/a", 3).at_operation(2).with_source(io);
        assert_eq!(
            err.to_string(),
            "bad_version: operation 2: node /a is not at version 3: reset"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
