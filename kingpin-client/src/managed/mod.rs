//! Typed readers of managed data files, in KingPin's formats (design.md
//! §5): a list is a JSON array, a map a JSON object, a mapped list an
//! object of arrays, and a JSON config any serde type.
//!
//! Each reader is a [`ConfigFile`](crate::ConfigFile) over a parsed
//! snapshot type ([`ListSnapshot`], [`MapSnapshot`],
//! [`MappedListSnapshot`]) with the lookups applications make, done on the
//! current snapshot. An empty file (no bytes, or only whitespace) reads as
//! the empty structure: KingPin wrote empty files for cleared data. Content
//! of the wrong shape is a parse error, so the reader keeps the last good
//! snapshot.

mod json;
mod list;
mod map;
mod mapped_list;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub use json::JsonReader;
pub use list::{ListSnapshot, ManagedListReader};
pub use map::{ManagedMapReader, MapSnapshot};
pub use mapped_list::{ManagedMappedListReader, MappedListSnapshot};

/// Whether `content` is empty or whitespace: KingPin's cleared data.
pub(crate) fn is_blank(content: &[u8]) -> bool {
    content.iter().all(u8::is_ascii_whitespace)
}

/// `content` as a `T`, or an error naming the `format` that was expected.
fn parse_json<T: DeserializeOwned>(content: &[u8], format: &str) -> Result<T> {
    serde_json::from_slice(content).map_err(|e| Error::content(format!("not {format}: {e}")))
}
