//! Reads the local files the kingpin monitor writes, for applications.
//!
//! The monitor (one per host) keeps configs in a config directory
//! ([`DEFAULT_CONFIG_DIR`], `/var/config`, one file per config named like
//! `config.manageddata.spam.blacklist`) and serversets in a serverset
//! directory ([`DEFAULT_SERVERSET_DIR`], `/var/serverset`, sorted
//! `host:port` lines). This crate turns such a file into a value an
//! application can read on every request:
//!
//! - **Lock-free reads.** A [`ConfigFile<T>`] holds the parsed file as an
//!   `Arc<T>` snapshot behind an atomic pointer; reading it takes no lock
//!   and never waits for a reload.
//! - **Reload on change.** The file's directory is watched (inotify on
//!   Linux); when the file is replaced (the monitor renames a complete
//!   temporary file over it), created or written, it is re-read, parsed and
//!   swapped in, and [`on_change`](ConfigFile::on_change) callbacks run.
//! - **Last good snapshot on errors.** A file that goes missing, does not
//!   parse, or (for serversets) suddenly lists no host, keeps the previous
//!   snapshot. The failure is logged through `tracing` and reported by
//!   [`ConfigFile::last_error`], [`ConfigFile::last_loaded`] and
//!   [`ConfigFile::failed_reloads`], so a health check can tell a stale
//!   file.
//!
//! Typed readers speak KingPin's file formats: [`ManagedListReader`] (a
//! JSON array), [`ManagedMapReader`] (a JSON object),
//! [`ManagedMappedListReader`] (an object of arrays), [`JsonReader`] (any
//! serde type), [`DeciderReader`] (the decider values, whose decisions
//! never fail), [`EnvironmentReader`] (a service's environment view, with
//! typed lookups such as `get::<u32>("db.pool_size")`) and
//! [`ServerSetReader`]. An empty file reads as the empty
//! structure, as KingPin wrote empty files for cleared data.
//!
//! ```no_run
//! use kingpin_client::{DeciderReader, ManagedListReader, ServerSetReader};
//! use kingpin_client::{DEFAULT_CONFIG_DIR, DEFAULT_SERVERSET_DIR};
//!
//! let blacklist = ManagedListReader::<String>::open_in(DEFAULT_CONFIG_DIR, "config.manageddata.spam.blacklist")?;
//! let decider = DeciderReader::open_default()?;
//! let api = ServerSetReader::open_in(DEFAULT_SERVERSET_DIR, "discovery.api.prod")?;
//!
//! // On every request: no I/O, no lock.
//! if !blacklist.contains("1.2.3.4") && decider.decide_for("new_feed", 42) {
//!     let endpoints = api.endpoints();
//!     println!("new feed via {}", endpoints[0]);
//! }
//! # Ok::<(), kingpin_client::Error>(())
//! ```
//!
//! [`HostsProvider`] picks a host of a service per request (random,
//! round-robin or power of two choices) from a serverset file it follows,
//! a static list or updates pushed by another source, with a static
//! fallback list; a host that failed can be invalidated for a retry period,
//! but never more than a fraction of the hosts at once.
//!
//! Which config version a file holds is in a [`VersionStamp`] the monitor
//! keeps beside it; [`ConfigFile::versioned_snapshot`] returns a snapshot
//! with its version.
//!
//! The crate is synchronous and small (no async runtime): reloads happen on
//! the watcher's thread.
#![deny(missing_docs)]

pub mod decider;
mod environment;
mod error;
mod file;
mod hosts;
pub mod managed;
mod name;
mod serverset;
mod version_stamp;

pub use decider::{Decider, DeciderReader, DECIDER_CONFIG};
pub use environment::{environment_file_name, EnvironmentReader, EnvironmentView};
pub use error::{BoxError, Error, Result};
pub use file::{ConfigFile, ConfigFileBuilder, LoadStatus, Reload};
pub use hosts::{
    HostLease, HostsError, HostsOrigin, HostsProvider, HostsProviderBuilder, HostsUpdater, Selector,
};
pub use managed::{
    JsonReader, ListSnapshot, ManagedListReader, ManagedMapReader, ManagedMappedListReader,
    ManagedReader, ManagedSnapshot, MapSnapshot, MappedListSnapshot,
};
pub use name::{file_in, DEFAULT_CONFIG_DIR, DEFAULT_SERVERSET_DIR};
pub use serverset::{parse_serverset, Endpoint, ServerSetReader};
pub use version_stamp::{content_sha256, VersionStamp, STAMP_DIR};
