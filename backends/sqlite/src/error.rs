//! Mapping rusqlite errors onto kingpin's kinds.

use std::path::Path;

use kingpin_api::{Error, ErrorKind};
use rusqlite::ErrorCode;

/// Converts a SQLite error on the database at `db` into a kingpin error,
/// keeping it as the source.
pub(crate) fn from_sqlite(err: rusqlite::Error, db: &Path) -> Error {
    let db = db.display();
    let (kind, message) = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
            ErrorKind::Unavailable,
            format!("SQLite database {db} stayed locked by another writer past the busy timeout"),
        ),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => (
            ErrorKind::Backend,
            format!("{db} is corrupt or not a SQLite database"),
        ),
        Some(ErrorCode::CannotOpen) => (
            ErrorKind::Unavailable,
            format!("cannot open SQLite database {db}"),
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => (
            ErrorKind::Unauthorized,
            format!("SQLite database {db} is not writable"),
        ),
        Some(ErrorCode::DiskFull) => (ErrorKind::Backend, format!("the disk holding {db} is full")),
        _ => (ErrorKind::Backend, format!("SQLite failed on {db}")),
    };
    Error::new(kind, message).with_source(err)
}
