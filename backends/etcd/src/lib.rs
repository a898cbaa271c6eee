//! kingpin's [`Coordinator`](kingpin_api::Coordinator) on etcd (v3 API),
//! through the `etcd-client` crate.
//!
//! etcd is a flat key space, so the hierarchy is emulated under a key prefix
//! (see [`keys`]): every node is one key whose name encodes its depth, so the
//! children of a node are one contiguous key range. Ephemeral nodes are
//! attached to a lease kept alive in the background; the lease is the
//! session. Writes are optimistic transactions: read a snapshot, decide the
//! outcome locally, commit with compare-on-revision, retry on conflict.
//!
//! Access control: [`roles`] turns a policy ([`kingpin_api::access`]) into
//! etcd roles with key-range permissions; the coordinator authenticates
//! with a user and password (`KINGPIN_ETCD_USER`, `KINGPIN_ETCD_PASSWORD`)
//! or a TLS client certificate (`KINGPIN_ETCD_CACERT`, `KINGPIN_ETCD_CERT`,
//! `KINGPIN_ETCD_KEY`).
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
pub mod keys;
pub mod roles;
mod session;
mod watch;

pub use backend::EtcdCoordinator;
pub use config::{EtcdConfig, CACERT_ENV, CERT_ENV, KEY_ENV, PASSWORD_ENV, USER_ENV};
