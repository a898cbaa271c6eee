//! The recipes' error type: the coordinator's errors, plus what only a
//! recipe can say (ownership lost, a node holding something unexpected).

use std::fmt;

use kingpin_api::{ErrorKind, NodePath};

/// Why a holder (of a lock, a lease, a leadership) stopped being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// The holder released it.
    Released,
    /// The session that owned the contender node expired (or was closed):
    /// the node is gone and another contender may hold now.
    SessionExpired,
    /// The contender node was deleted by someone else (an operator, a
    /// cleanup script).
    NodeDeleted,
}

impl LossReason {
    /// A short, stable, lowercase name (for logs).
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::Released => "released",
            LossReason::SessionExpired => "session_expired",
            LossReason::NodeDeleted => "node_deleted",
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a holder may not act as one right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotHeldReason {
    /// The connection is lost; the session may still be alive, and so the
    /// hold, but nobody can tell until it reconnects.
    Suspended,
    /// The hold is over for good.
    Lost(LossReason),
}

impl fmt::Display for NotHeldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotHeldReason::Suspended => f.write_str("the session is suspended"),
            NotHeldReason::Lost(LossReason::Released) => f.write_str("it was released"),
            NotHeldReason::Lost(LossReason::SessionExpired) => f.write_str("its session expired"),
            NotHeldReason::Lost(LossReason::NodeDeleted) => {
                f.write_str("its contender node was deleted")
            }
        }
    }
}

/// What went wrong in a recipe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The coordinator's own error (its kind says what: `Unavailable`,
    /// `InvalidArgument` for a bad path, …).
    #[error(transparent)]
    Coordinator(#[from] kingpin_api::Error),
    /// A guarded operation was refused because the lock, lease or
    /// leadership it relies on is not held (any more, or right now): the
    /// fencing token it carried is dead or in doubt.
    #[error("{what} is not held: {reason}")]
    NotHeld {
        /// The contender node the hold was on.
        what: NodePath,
        /// Why.
        reason: NotHeldReason,
    },
    /// A recipe's node holds data the recipe cannot read (a counter that is
    /// not an integer, a semaphore created with another limit).
    #[error("{path}: {message}")]
    Conflict {
        /// The node.
        path: NodePath,
        /// What is wrong with it.
        message: String,
    },
    /// An argument was refused before any I/O.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The closest coordinator [`ErrorKind`], for callers (and exit codes)
    /// that branch on kinds: `NotHeld` is `SessionExpired` when the session
    /// is gone or in doubt and `NotFound` when the node was deleted;
    /// `Conflict` is `BadVersion`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Coordinator(e) => e.kind(),
            Error::NotHeld {
                reason: NotHeldReason::Lost(LossReason::NodeDeleted),
                ..
            } => ErrorKind::NotFound,
            Error::NotHeld { .. } => ErrorKind::SessionExpired,
            Error::Conflict { .. } => ErrorKind::BadVersion,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
        }
    }

    /// Whether trying the whole recipe operation again later may succeed
    /// (the coordinator was unreachable). A refused guarded write is not
    /// retryable: its token is dead, a new hold is needed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Coordinator(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// `Result` with the recipes' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_coordinator_and_the_reason() {
        let path = NodePath::parse("/l/x__lock__0000000001").unwrap();
        let deleted = Error::NotHeld {
            what: path.clone(),
            reason: NotHeldReason::Lost(LossReason::NodeDeleted),
        };
        assert_eq!(deleted.kind(), ErrorKind::NotFound);
        let suspended = Error::NotHeld {
            what: path,
            reason: NotHeldReason::Suspended,
        };
        assert_eq!(suspended.kind(), ErrorKind::SessionExpired);
        assert!(!suspended.is_retryable());
        assert!(suspended.to_string().contains("suspended"), "{suspended}");
        let down: Error = kingpin_api::Error::unavailable("down").into();
        assert!(down.is_retryable());
    }
}
