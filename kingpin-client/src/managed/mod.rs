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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::file::ConfigFile;
use crate::name::file_in;

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

/// What a managed reader holds: a snapshot parsed from the file's content,
/// empty by default.
pub trait ManagedSnapshot: Default + Send + Sync + 'static {
    /// Parses a file's content.
    ///
    /// # Errors
    ///
    /// [`Error::Content`](crate::Error::Content) for content of another
    /// shape.
    fn parse(content: &[u8]) -> Result<Self>;

    /// How many items (or keys) it holds.
    fn len(&self) -> usize;

    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A managed data file, reloaded when it changes: the shared half of
/// [`ManagedListReader`], [`ManagedMapReader`] and
/// [`ManagedMappedListReader`], whose lookups are on their own `impl`s.
#[derive(Debug)]
pub struct ManagedReader<S> {
    file: ConfigFile<S>,
}

impl<S: ManagedSnapshot> ManagedReader<S> {
    /// Reads the file at `path`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open`]: the file must exist and have the reader's
    /// shape.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(ManagedReader {
            file: ConfigFile::open(path, S::parse)?,
        })
    }

    /// Reads the config `name` in the config directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName), before any I/O,
    /// when `name` is not a plain file name; else as [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        Self::open(file_in(dir, name)?)
    }

    /// Reads the file at `path`, as empty while it is missing or broken
    /// (KingPin read a config that does not exist as empty).
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open_or`].
    pub fn open_or_empty(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(ManagedReader {
            file: ConfigFile::open_or(path, S::default(), S::parse)?,
        })
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<S> {
        &self.file
    }

    /// The current snapshot, without copying it.
    pub fn snapshot(&self) -> Arc<S> {
        self.file.snapshot()
    }

    /// How many items (or keys) the current snapshot holds.
    pub fn len(&self) -> usize {
        self.file.snapshot().len()
    }

    /// Whether the current snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.file.snapshot().is_empty()
    }
}
