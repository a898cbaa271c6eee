//! A kingpin [`Coordinator`](kingpin_api::Coordinator) on PostgreSQL,
//! written outside the kingpin workspace as any third party would, against
//! `kingpin-api` alone, and checked by the conformance kit.
//!
//! - **Nodes** are rows of `<schema>.nodes`. Every write is one SQL
//!   transaction that first locks the schema's single `meta` row, so writes
//!   are applied one at a time in revision order (ZooKeeper's total order):
//!   compare-and-set compares the row's `version`, a multi-operation
//!   transaction is all or nothing, and a sequential name takes the
//!   parent's `child_seq` counter.
//! - **Sessions** are rows of `<schema>.sessions` whose `expires_at` a
//!   heartbeat pushes forward every third of the session timeout, on the
//!   server's clock. Every heartbeat also reaps: any client deletes the
//!   sessions that ran out, with their ephemeral nodes, and notifies their
//!   watchers, so a crashed client's nodes go away after its timeout.
//! - **Watches** follow `LISTEN/NOTIFY`: a write notifies
//!   `"<revision> <kind> <path>"` per change on the schema's channel. A
//!   listener reports `Resync` to every watch whenever notifications may
//!   have been missed: after its connection was lost and re-established,
//!   when a revision arrives out of sequence (each committed write takes
//!   the next revision, so a gap proves something was missed), and when the
//!   session was renewed. PostgreSQL itself never drops a notification for
//!   a connected listener: when its queue is full, the *writer's* commit
//!   fails (reported as `Unavailable`, nothing applied).
//!
//! Credentials stay out of URLs and messages: the connection is a
//! [`tokio_postgres::Config`] built by the caller (a password, if any, set
//! with [`tokio_postgres::Config::password`]). This example connects
//! without TLS, for a server on loopback or a trusted network.
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
mod nodes;
mod schema;
mod session;
mod watch;

pub use backend::PostgresCoordinator;
pub use config::PostgresConfig;
/// The PostgreSQL client, re-exported to build a [`PostgresConfig`].
pub use tokio_postgres;
pub use watch::listener_name;
