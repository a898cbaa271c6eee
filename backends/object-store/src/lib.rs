//! kingpin's [`BlobStore`](kingpin_api::BlobStore) on the `object_store`
//! crate: `file://` (the embedded default), `memory://`, and the clouds
//! object_store speaks (`s3://`/`s3a://`, `gs://`, `az://`).
//!
//! On the clouds, `put_if_absent` never trusts a server to honour a
//! conditional create until it has seen it do so (see [`ConditionalPut`]),
//! and credentials come from the environment only (see
//! [`ObjectStoreBlobStore::from_url`]).
//!
//! ```no_run
//! # async fn demo() -> kingpin_api::Result<()> {
//! use kingpin_api::{BlobKey, BlobStore};
//! let store = kingpin_object_store::ObjectStoreBlobStore::from_url("file:///var/lib/kingpin/blobs").await?;
//! store.put_if_absent(&BlobKey::parse("config/x/0000000001-ab")?, "[]".into()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod backend;
mod config;
mod credentials;
mod error;

pub use backend::ObjectStoreBlobStore;
pub use config::{ConditionalPut, ObjectStoreUrl};
