//! [`JsonReader`]: a managed JSON config's local file, as any serde type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{is_blank, parse_json};
use crate::error::Result;
use crate::file::ConfigFile;
use crate::name::file_in;

/// A JSON config (`ManagedJson<T>` in kingpin-api) as a `T`, reloaded when
/// its file changes.
///
/// An empty file reads as JSON `null`: read a config that may be cleared
/// as a `JsonReader<Option<T>>`. Content that does not deserialize into `T`
/// keeps the last good value.
///
/// ```
/// use kingpin_client::JsonReader;
/// #[derive(serde::Deserialize)]
/// struct Limits { rate: u32 }
///
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.app.limits"), r#"{"rate": 5}"#)?;
/// let limits = JsonReader::<Limits>::open_in(dir.path(), "config.app.limits")?;
/// assert_eq!(limits.get().rate, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct JsonReader<T> {
    file: ConfigFile<T>,
}

impl<T> JsonReader<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Reads the JSON file at `path`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open`]: the file must exist and hold a `T`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(JsonReader {
            file: ConfigFile::open(path, parse::<T>)?,
        })
    }

    /// Reads the JSON config `name` in the config directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName), before any I/O,
    /// when `name` is not a plain file name; else as [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        Self::open(file_in(dir, name)?)
    }

    /// Reads the JSON file at `path`, as `default` while it is missing or
    /// does not hold a `T`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open_or`].
    pub fn open_or(path: impl Into<PathBuf>, default: T) -> Result<Self> {
        Ok(JsonReader {
            file: ConfigFile::open_or(path, default, parse::<T>)?,
        })
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<T> {
        &self.file
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.file.snapshot()
    }
}

fn parse<T: DeserializeOwned>(content: &[u8]) -> Result<T> {
    let content = if is_blank(content) {
        &b"null"[..]
    } else {
        content
    };
    parse_json(content, "JSON of the expected type")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_null() {
        assert_eq!(parse::<Option<u32>>(b" ").unwrap(), None);
        assert!(parse::<u32>(b"").is_err());
    }
}
