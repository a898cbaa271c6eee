//! One conformance suite every coordinator backend runs against a real
//! server, in the style of object_store's integration module: plain
//! `async fn case(harness)` functions, and a macro that turns them into one
//! test per case for a backend.
//!
//! Each test gets its own namespace (ZooKeeper chroot, etcd key prefix), so
//! tests run in parallel against one shared server.

pub mod blob_store;
pub mod cluster;
pub mod config_store;
pub mod coordinator;
pub mod discovery;
pub mod endpoints;
pub mod environments;
pub mod harness;
pub mod latency;
pub mod linearizability;
pub mod partition;
pub mod s3;
pub mod s3_proxy;
pub mod server_harness;
pub mod servers;
pub mod sigv4;

pub use endpoints::ServerNeeds;
pub use harness::{Harness, TestSession};

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
