//! Conformance suites every kingpin backend runs against a real server, in
//! the style of object_store's integration module: plain
//! `async fn case(harness)` functions, and a macro per suite that turns them
//! into one test per case for a backend:
//!
//! * [`coordinator_suite!`] (coordinator and discovery cases) on a
//!   [`Harness`];
//! * [`blob_store_suite!`] on a `BlobStore` confined to a fresh prefix;
//! * [`config_suite!`] (config store, managed data, decider, metaconfig,
//!   environments) on a [`ConfigBackends`].
//!
//! A case that relies on a [`Capability`] the backend declares off is
//! skipped and says so in the test output; the coordinator suite's
//! `capabilities_summary` test prints which cases a backend skips.
//!
//! Each test gets its own namespace (ZooKeeper chroot, etcd key prefix), so
//! tests run in parallel against one shared server.
//!
//! Without features the crate is the suites alone; `servers` adds the
//! helpers that find or start real servers, used by the project's own
//! backends.

#![deny(missing_docs)]

pub mod access;
pub mod blob_store;
pub mod capabilities;
#[cfg(feature = "servers")]
pub mod certificates;
#[cfg(feature = "servers")]
pub mod cluster;
pub mod config_history;
pub mod config_store;
pub mod coordinator;
pub mod discovery;
#[cfg(feature = "servers")]
pub mod endpoints;
pub mod environments;
pub mod harness;
#[cfg(feature = "servers")]
pub mod kazoo;
pub mod latency;
pub mod linearizability;
#[cfg(feature = "servers")]
pub mod partition;
#[cfg(feature = "recipes")]
pub mod recipes;
#[cfg(feature = "servers")]
pub mod s3;
#[cfg(feature = "servers")]
pub mod s3_proxy;
#[cfg(feature = "servers")]
pub mod server_harness;
#[cfg(feature = "servers")]
pub mod servers;
#[cfg(feature = "servers")]
pub mod sigv4;
pub mod torn_files;

/// Re-exported for implementing [`Harness`] and [`ConfigBackends`]
/// (`#[kingpin_conformance_tests::async_trait]`) without a dependency of
/// one's own.
pub use async_trait::async_trait;
pub use config_store::ConfigBackends;
pub use harness::{Capability, Harness, PeerSession, ServerNeeds, TestSession};
/// The kingpin API the suites test, re-exported so a test file names the
/// same version the kit was built with.
pub use kingpin_api;

/// A suffix unique to this process and call, for namespaces and scratch
/// directories.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), rand::random::<u32>())
}

/// A unique suffix usable inside a config or dependency name component
/// (`[a-z0-9_]`).
pub fn unique_name_component() -> String {
    unique_suffix().replace('-', "_")
}

/// A fresh namespace path such as `/kingpin-test-1234-99-0`.
pub fn unique_namespace() -> String {
    format!("/kingpin-test-{}", unique_suffix())
}
