//! PostgreSQL errors as kingpin error kinds.

use kingpin_api::{Error, ErrorKind};

/// Maps a client error: a lost or refused connection and the server's
/// transient refusals are retryable (`Unavailable`); permissions are
/// `Unauthorized`; the rest is `Backend`. The source is kept.
pub(crate) fn from_pg(e: tokio_postgres::Error, what: &str) -> Error {
    let kind = match e.code().map(|c| c.code()) {
        // No SQLSTATE: the connection is closed, refused or broken.
        None => ErrorKind::Unavailable,
        Some(code) if is_transient(code, &e) => ErrorKind::Unavailable,
        Some(code) if code.starts_with("28") || code == "42501" => ErrorKind::Unauthorized,
        Some(_) => ErrorKind::Backend,
    };
    Error::new(kind, format!("PostgreSQL: {what} failed")).with_source(e)
}

fn is_transient(code: &str, e: &tokio_postgres::Error) -> bool {
    // 08: connection exception; 57P0x: shutting down or starting up;
    // 53: out of resources; 40001/40P01: serialization failure, deadlock.
    code.starts_with("08")
        || code.starts_with("57P0")
        || code.starts_with("53")
        || code == "40001"
        || code == "40P01"
        // The NOTIFY queue is full: the commit failed and applied nothing;
        // it drains as listeners read.
        || (code == "54000"
            && e.as_db_error()
                .is_some_and(|db| db.message().contains("NOTIFY queue")))
}

/// `Unavailable` for an operation that ran past its timeout.
pub(crate) fn timed_out(what: &str) -> Error {
    Error::unavailable(format!("PostgreSQL: {what} timed out"))
}
