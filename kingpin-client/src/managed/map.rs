//! [`ManagedMapReader`]: a managed hash map's local file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{is_blank, parse_json};
use crate::error::Result;
use crate::file::ConfigFile;
use crate::name::file_in;

/// The entries of a managed map, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSnapshot<V> {
    entries: BTreeMap<String, V>,
}

impl<V> Default for MapSnapshot<V> {
    fn default() -> Self {
        MapSnapshot {
            entries: BTreeMap::new(),
        }
    }
}

impl<V: DeserializeOwned> MapSnapshot<V> {
    /// A managed map file's content: a JSON object of `V`, or nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Content`](crate::Error::Content) for anything else.
    pub fn parse(content: &[u8]) -> Result<Self> {
        if is_blank(content) {
            return Ok(Self::default());
        }
        Ok(MapSnapshot {
            entries: parse_json(content, "a managed map (a JSON object)")?,
        })
    }
}

impl<V> MapSnapshot<V> {
    /// A snapshot of `entries`.
    pub fn new(entries: BTreeMap<String, V>) -> Self {
        MapSnapshot { entries }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Every entry, by key.
    pub fn entries(&self) -> &BTreeMap<String, V> {
        &self.entries
    }

    /// How many entries the map has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A managed map (`ManagedHashMap` in kingpin-api, a JSON object on disk),
/// reloaded when its file changes.
///
/// ```
/// use kingpin_client::ManagedMapReader;
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.manageddata.app.limits"), r#"{"burst": 10, "rate": 2}"#)?;
/// let limits = ManagedMapReader::<u32>::open_in(dir.path(), "config.manageddata.app.limits")?;
/// assert_eq!(limits.get("rate"), Some(2));
/// assert_eq!(limits.keys(), ["burst", "rate"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ManagedMapReader<V = String> {
    file: ConfigFile<MapSnapshot<V>>,
}

impl<V> ManagedMapReader<V>
where
    V: DeserializeOwned + Send + Sync + 'static,
{
    /// Reads the map file at `path`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open`]: the file must exist and hold a map.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(ManagedMapReader {
            file: ConfigFile::open(path, MapSnapshot::parse)?,
        })
    }

    /// Reads the map config `name` in the config directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName), before any I/O,
    /// when `name` is not a plain file name; else as [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        Self::open(file_in(dir, name)?)
    }

    /// Reads the map file at `path`, as an empty map while it is missing or
    /// broken.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open_or`].
    pub fn open_or_empty(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(ManagedMapReader {
            file: ConfigFile::open_or(path, MapSnapshot::default(), MapSnapshot::parse)?,
        })
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<MapSnapshot<V>> {
        &self.file
    }

    /// The current map, without copying it.
    pub fn snapshot(&self) -> Arc<MapSnapshot<V>> {
        self.file.snapshot()
    }

    /// A copy of the value of `key`.
    pub fn get(&self, key: &str) -> Option<V>
    where
        V: Clone,
    {
        self.file.snapshot().get(key).cloned()
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.file.snapshot().contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.file.snapshot().keys().map(str::to_owned).collect()
    }

    /// How many entries the map has.
    pub fn len(&self) -> usize {
        self.file.snapshot().len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.file.snapshot().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_is_a_map() {
        let map = MapSnapshot::<i64>::parse(br#"{"b": 2, "a": 1}"#).unwrap();
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(map.contains_key("b") && !map.contains_key("c"));
    }

    #[test]
    fn an_empty_file_is_an_empty_map() {
        assert!(MapSnapshot::<i64>::parse(b"\n").unwrap().is_empty());
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [&br#"["a"]"#[..], br#"{"a": "x"}"#, b"1"] {
            assert!(MapSnapshot::<i64>::parse(bad).is_err(), "{bad:?}");
        }
    }
}
