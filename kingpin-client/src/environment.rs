//! [`EnvironmentReader`]: a service's environment view, as the monitor
//! writes it for this host (`environments.<service>` in the config
//! directory), with typed access to its keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::file::ConfigFile;
use crate::managed::is_blank;
use crate::name::{file_in, DEFAULT_CONFIG_DIR};

/// The local file name of `service`'s view: `environments.<service>`.
pub fn environment_file_name(service: &str) -> String {
    format!("environments.{service}")
}

/// One snapshot of a view: a JSON object whose keys are read by dotted
/// paths (`"db.pool_size"` is `view["db"]["pool_size"]`; for a key that
/// itself holds a dot, use [`value_at`](Self::value_at)).
///
/// ```
/// use kingpin_client::EnvironmentView;
/// let view = EnvironmentView::from_json(br#"{"db": {"pool_size": 20, "host": "db1"}}"#)?;
/// assert_eq!(view.get::<u32>("db.pool_size"), Some(20));
/// assert_eq!(view.get_or("db.timeout_ms", 500u64), 500);
/// assert!(view.try_get::<u32>("db.host").is_err(), "a string is not a u32");
/// # Ok::<(), kingpin_client::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentView {
    values: Map<String, Value>,
}

impl EnvironmentView {
    /// A view from a view file's content (a JSON object; an empty file is
    /// an empty view).
    ///
    /// # Errors
    ///
    /// [`Error::Content`] for anything but a JSON object.
    pub fn from_json(content: &[u8]) -> Result<Self> {
        if is_blank(content) {
            return Ok(Self::default());
        }
        match serde_json::from_slice(content) {
            Ok(Value::Object(values)) => Ok(EnvironmentView { values }),
            Ok(_) => Err(Error::content("an environment view must be a JSON object")),
            Err(e) => Err(Error::content(format!(
                "an environment view is not JSON: {e}"
            ))),
        }
    }

    /// Every key, as the JSON object it is.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The value at a dotted path, if there is one.
    pub fn value(&self, key: &str) -> Option<&Value> {
        let mut keys = key.split('.');
        let mut value = self.values.get(keys.next()?)?;
        for key in keys {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }

    /// The value at a path given key by key.
    pub fn value_at(&self, keys: &[&str]) -> Option<&Value> {
        let (first, rest) = keys.split_first()?;
        rest.iter()
            .try_fold(self.values.get(*first)?, |value, key| {
                value.as_object()?.get(*key)
            })
    }

    /// The value at `key` as a `T`: `None` when it is missing or is not a
    /// `T` (see [`try_get`](Self::try_get) to tell the two apart).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.try_get(key).ok().flatten()
    }

    /// The value at `key` as a `T`, or `default` when it is missing or is
    /// not a `T`.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        self.get(key).unwrap_or(default)
    }

    /// The value at `key` as a `T`; `None` when missing.
    ///
    /// # Errors
    ///
    /// [`Error::Content`] when the value is there but is not a `T`.
    pub fn try_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.value(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| Error::content(format!("{key}: {e}"))),
        }
    }
}

/// A service's environment view, reloaded when the monitor replaces its
/// file: lock-free reads of a snapshot, typed lookups by dotted path,
/// change callbacks ([`file`](Self::file)`.on_change`), and the last good
/// view kept when the file goes missing or does not parse.
///
/// ```
/// use kingpin_client::EnvironmentReader;
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("environments.web"), r#"{"db": {"pool_size": 20}}"#)?;
/// let web = EnvironmentReader::open_in(dir.path(), "web")?;
/// assert_eq!(web.get::<u32>("db.pool_size"), Some(20));
/// web.file().on_change(|view| println!("pool: {:?}", view.get::<u32>("db.pool_size")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct EnvironmentReader {
    file: ConfigFile<EnvironmentView>,
}

impl EnvironmentReader {
    /// Reads the view file at `path`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open`]: the file must exist and hold a JSON object.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(EnvironmentReader {
            file: ConfigFile::open(path, EnvironmentView::from_json)?,
        })
    }

    /// Reads `service`'s view in the config directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a service that is not a plain name,
    /// before any I/O; else as [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>, service: &str) -> Result<Self> {
        Self::open(file_in(dir, &environment_file_name(service))?)
    }

    /// Reads `service`'s view in `/var/config`.
    ///
    /// # Errors
    ///
    /// As [`open_in`](Self::open_in).
    pub fn open_default(service: &str) -> Result<Self> {
        Self::open_in(DEFAULT_CONFIG_DIR, service)
    }

    /// Reads the view file at `path`, as an empty view while it is missing
    /// or broken.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open_or`].
    pub fn open_or_empty(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(EnvironmentReader {
            file: ConfigFile::open_or(
                path,
                EnvironmentView::default(),
                EnvironmentView::from_json,
            )?,
        })
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<EnvironmentView> {
        &self.file
    }

    /// The current view: several lookups on one snapshot are consistent.
    pub fn snapshot(&self) -> Arc<EnvironmentView> {
        self.file.snapshot()
    }

    /// [`EnvironmentView::get`] on the current view.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.file.snapshot().get(key)
    }

    /// [`EnvironmentView::get_or`] on the current view.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        self.file.snapshot().get_or(key, default)
    }

    /// [`EnvironmentView::try_get`] on the current view.
    ///
    /// # Errors
    ///
    /// As [`EnvironmentView::try_get`].
    pub fn try_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.file.snapshot().try_get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_path() {
        let view =
            EnvironmentView::from_json(br#"{"a": {"b.c": 1, "d": [1, 2]}, "e": true}"#).unwrap();
        assert_eq!(view.value_at(&["a", "b.c"]), Some(&Value::from(1)));
        assert_eq!(view.get::<Vec<u8>>("a.d"), Some(vec![1, 2]));
        assert_eq!(view.get::<bool>("e"), Some(true));
        assert_eq!(view.get::<bool>("a.missing"), None);
        assert_eq!(view.try_get::<bool>("a.missing").unwrap(), None);
        assert!(view.try_get::<bool>("a.d").is_err());
        assert!(EnvironmentView::from_json(b"[1]").is_err());
        assert_eq!(
            EnvironmentView::from_json(b"").unwrap(),
            EnvironmentView::default()
        );
    }
}
