//! kingpin's [`Coordinator`](kingpin_api::Coordinator) on SQLite: the
//! embedded default. One database file (WAL mode) is shared by every
//! process on a host.
//!
//! - Nodes are rows; every write is one `BEGIN IMMEDIATE` transaction.
//! - Sessions are rows kept alive by heartbeats. Any live process reaps
//!   sessions whose heartbeat stopped, with their ephemeral nodes, so a
//!   crashed process's nodes vanish after its session timeout.
//! - Every change is appended to a revision log; watches poll it (cheaply,
//!   through `PRAGMA data_version`) and report `Resync` when the log was
//!   trimmed past what they had seen.
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
mod schema;
mod session;
mod watch;

pub use backend::SqliteCoordinator;
pub use config::SqliteConfig;
