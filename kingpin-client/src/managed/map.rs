//! [`ManagedMapReader`]: a managed hash map's local file.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::{is_blank, parse_json, ManagedReader, ManagedSnapshot};
use crate::error::Result;

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

impl<V> ManagedSnapshot for MapSnapshot<V>
where
    V: DeserializeOwned + Send + Sync + 'static,
{
    fn parse(content: &[u8]) -> Result<Self> {
        MapSnapshot::parse(content)
    }

    fn len(&self) -> usize {
        MapSnapshot::len(self)
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
pub type ManagedMapReader<V = String> = ManagedReader<MapSnapshot<V>>;

impl<V> ManagedReader<MapSnapshot<V>>
where
    V: DeserializeOwned + Send + Sync + 'static,
{
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
