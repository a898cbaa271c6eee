//! Backup and restore of a kingpin namespace, generic over the
//! [`Coordinator`](kingpin_api::Coordinator) and
//! [`BlobStore`](kingpin_api::BlobStore) behind a [`ConfigStore`]: every
//! config (plain, managed data, the decider, environments' contents and
//! views) with every version's record and content, every metaconfig,
//! dependency and environment tree with its host associations, in one
//! archive file ([`archive`] describes the format, `kingpin-backup/1`).
//!
//! A restore puts everything back exactly (version numbers, authors,
//! messages, timestamps, view sources, pins) into an empty namespace on
//! any backend pair, so it is also the way from ZooKeeper + S3 to etcd +
//! GCS. The archive is checked completely (every line, name and record,
//! every blob's sha256) before anything is written.
//!
//! ```no_run
//! # async fn demo(source: kingpin_api::ConfigStore, target: kingpin_api::ConfigStore) -> kingpin_api::Result<()> {
//! use kingpin_backup::{backup, restore, RestoreOptions};
//! let file = std::fs::File::create("kingpin.backup").expect("a file");
//! backup(&source, std::io::BufWriter::new(file)).await?;
//! let open = || {
//!     std::fs::File::open("kingpin.backup")
//!         .map(std::io::BufReader::new)
//!         .map_err(|e| kingpin_api::Error::invalid(format!("cannot open the archive: {e}")))
//! };
//! restore(&target, open, RestoreOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! [`ConfigStore`]: kingpin_api::ConfigStore
#![deny(missing_docs)]

pub mod archive;
mod backup;
mod restore;

pub use archive::{verify, ArchivedConfig, ArchivedService, Manifest, FORMAT};
pub use backup::{backup, find_configs, BackupReport};
pub use restore::{restore, RestoreOptions, RestoreReport};
