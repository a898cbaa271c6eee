//! kingpin's [`BlobStore`](kingpin_api::BlobStore) on Amazon S3 and
//! S3-compatible servers (MinIO, s3s, …), through `aws-sdk-s3`: the
//! production default.
//!
//! ```no_run
//! # async fn demo() -> kingpin_api::Result<()> {
//! use kingpin_s3::{S3BlobStore, S3Config};
//! let config = S3Config::from_url("s3://configs/kingpin?region=us-east-1")?;
//! let store = S3BlobStore::connect(config).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod backend;
mod config;
mod error;

pub use backend::S3BlobStore;
pub use config::{ConditionalPut, S3Config};
