//! kingpin's [`Coordinator`](kingpin_api::Coordinator) on ZooKeeper 3.5+,
//! through the `zookeeper-client` crate.
//!
//! ```no_run
//! # async fn demo() -> kingpin_api::Result<()> {
//! use kingpin_api::{Coordinator, CoordinatorUrl, CreateMode, NodePath};
//! let url = CoordinatorUrl::parse("zk://127.0.0.1:2181/kingpin?session_timeout=10s")?;
//! let zk = kingpin_zookeeper::ZooKeeperCoordinator::connect(
//!     kingpin_zookeeper::ZooKeeperConfig::from_url(&url)?,
//! )
//! .await?;
//! zk.create(&NodePath::parse("/config/x")?, b"{}", CreateMode::Persistent).await?;
//! # Ok(()) }
//! ```
//!
//! Access control: nodes get the ACLs of the namespace's access policy
//! ([`kingpin_api::access`]) once [`apply_policy`] has stored one; see
//! [`AclMode`] for the `acl` URL option.
#![deny(missing_docs)]

mod access;
mod acl;
mod backend;
mod config;
mod error;
mod session;
mod watch;

pub use access::{apply_policy, check_policy, stored_policy};
pub use acl::{digest_identity, validate_policy, AclMode};
pub use backend::ZooKeeperCoordinator;
pub use config::{ZooKeeperConfig, CACERT_ENV, CERT_ENV, DIGEST_ENV, KEY_ENV};
