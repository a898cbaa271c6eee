//! Failures as exit codes and messages on stderr.
//!
//! The exit code comes from the [`kingpin_api::Error`] in the error's
//! chain (see the table in `main.rs`); errors with no kingpin error inside
//! are exit code 1, and [`UsageError`] is 2 like clap's own.

use std::fmt;

use kingpin::kingpin_api::{self, ErrorKind};
use serde_json::json;

/// A command line clap accepted but that makes no sense (e.g. a KEY without
/// its VALUE): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit status of a command kingpin ran for the user (`kingpin lock`,
/// `kingpin elect`): becomes kingpin's own exit code, and nothing is
/// printed (the command spoke for itself).
#[derive(Debug)]
pub struct CommandExit(pub u8);

impl fmt::Display for CommandExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the command exited with {}", self.0)
    }
}

impl std::error::Error for CommandExit {}

/// The exit code for success.
pub const SUCCESS: u8 = 0;
/// Any other failure: a backend error, an I/O error.
pub const OTHER: u8 = 1;
/// A usage error (clap's own, or [`UsageError`]).
pub const USAGE: u8 = 2;
/// Something named does not exist.
pub const NOT_FOUND: u8 = 3;
/// A compare-and-set lost, or something exists or is not empty.
pub const CONFLICT: u8 = 4;
/// The backend cannot be reached right now; try again.
pub const UNAVAILABLE: u8 = 5;
/// Bad input: a name, an item, JSON, a size.
pub const INVALID_INPUT: u8 = 6;
/// Credentials or permissions were refused.
pub const UNAUTHORIZED: u8 = 7;

/// The exit code of a kingpin error kind.
pub fn exit_code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::BadVersion | ErrorKind::AlreadyExists | ErrorKind::NotEmpty => CONFLICT,
        ErrorKind::Unavailable | ErrorKind::SessionExpired => UNAVAILABLE,
        ErrorKind::InvalidArgument | ErrorKind::TooLarge => INVALID_INPUT,
        ErrorKind::Unauthorized => UNAUTHORIZED,
        _ => OTHER,
    }
}

/// What failed, as a kind name and an exit code.
fn classify(err: &anyhow::Error) -> (&'static str, u8, bool) {
    if err.chain().any(|e| e.is::<UsageError>()) {
        return ("usage", USAGE, false);
    }
    match kingpin_error(err) {
        Some(e) => (e.kind().as_str(), exit_code_of(e.kind()), e.is_retryable()),
        None => ("other", OTHER, false),
    }
}

/// The first kingpin error in the chain, if any.
fn kingpin_error(err: &anyhow::Error) -> Option<&kingpin_api::Error> {
    err.chain()
        .find_map(|e| e.downcast_ref::<kingpin_api::Error>())
}

/// The exit code for `err`.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<CommandExit>() {
        Some(CommandExit(code)) => *code,
        None => classify(err).1,
    }
}

/// The message: every context and cause once, kingpin errors without their
/// kind prefix (the kind is printed separately).
fn message(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<kingpin_api::Error>() {
            Some(e) => e.message().to_owned(),
            None => cause.to_string(),
        };
        // Some errors print their source too; do not repeat it.
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Prints `err` to stderr: `kingpin: <kind>: <message>`, or with `--json`
/// `{"error":{"kind":…,"message":…}}`.
pub fn report(err: &anyhow::Error, json: bool) {
    if err.is::<CommandExit>() {
        return;
    }
    let (kind, _, retryable) = classify(err);
    let mut message = message(err);
    if retryable {
        message.push_str(" (temporary; try again)");
    }
    if json {
        eprintln!(
            "{}",
            json!({ "error": { "kind": kind, "message": message } })
        );
    } else {
        eprintln!("kingpin: {kind}: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn kinds_map_to_codes_through_context() {
        let err =
            anyhow::Error::new(kingpin_api::Error::not_found("/a")).context("reading config.a");
        assert_eq!(exit_code(&err), NOT_FOUND);
        assert_eq!(message(&err), "reading config.a: node /a does not exist");
        let err: anyhow::Result<()> = Err(kingpin_api::Error::unavailable("down")).context("x");
        assert_eq!(exit_code(&err.unwrap_err()), UNAVAILABLE);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), OTHER);
        assert_eq!(exit_code(&UsageError("odd".into()).into()), USAGE);
    }

    #[test]
    fn sources_are_not_repeated() {
        let io = std::io::Error::other("refused");
        let err = anyhow::Error::new(kingpin_api::Error::unavailable("zk down").with_source(io));
        assert_eq!(message(&err), "zk down: refused");
    }
}
