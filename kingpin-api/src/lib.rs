//! kingpin's core API: the [`Coordinator`] and [`BlobStore`] traits and their
//! contracts, the one [`Error`] type, validated [`NodePath`]s and
//! [`BlobKey`]s, coordinator URLs, and the in-memory reference
//! implementations [`MemoryCoordinator`] and [`MemoryBlobStore`].
//!
//! Backends (ZooKeeper, etcd, SQLite) live in their own crates and implement
//! [`Coordinator`]; everything built above the trait takes an
//! `Arc<dyn Coordinator>` and never names a backend.
#![deny(missing_docs)]

pub mod access;
mod backoff;
mod blob;
pub mod config;
mod coordinator;
pub mod decider;
pub mod discovery;
pub mod environment;
mod error;
pub mod managed;
pub mod memory;
pub mod metaconfig;
mod path;
mod session;
pub mod status;
mod tls_files;
mod url;
mod watch_channel;

pub use backoff::Backoff;
pub use blob::{BlobKey, BlobMeta, BlobStore, MAX_BLOB_KEY_LEN};
pub use config::{ChangeInfo, Config, ConfigName, ConfigRecord, ConfigStore};
pub use coordinator::{
    check_data_size, check_expected_version, sequential_path, Capabilities, Coordinator,
    CreateMode, Node, Op, OpResult, SessionEvent, SessionEvents, SessionState, Stat, WatchEvent,
    WatchKind, WatchStream, DEFAULT_MAX_DATA_SIZE, SEQUENCE_DIGITS,
};
pub use error::{Error, ErrorKind, Result};
pub use memory::{MemoryBlobStore, MemoryCoordinator, MemoryServer};
pub use path::{NodePath, MAX_COMPONENT_LEN, MAX_PATH_LEN};
pub use session::SessionHub;
pub use tls_files::PemFiles;
pub use url::{is_credential_option, CoordinatorScheme, CoordinatorUrl};
pub use watch_channel::{watch_channel, WatchSender};
