//! [`ManagedMappedListReader`]: a managed mapped list's local file.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;

use serde::de::DeserializeOwned;

use super::{is_blank, parse_json, ListSnapshot, ManagedReader, ManagedSnapshot};
use crate::error::Result;

/// The lists of a managed mapped list, by key; each list indexed for O(1)
/// membership tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedListSnapshot<T: Eq + Hash> {
    lists: BTreeMap<String, ListSnapshot<T>>,
}

impl<T: Eq + Hash> Default for MappedListSnapshot<T> {
    fn default() -> Self {
        MappedListSnapshot {
            lists: BTreeMap::new(),
        }
    }
}

impl<T: Eq + Hash + Clone + DeserializeOwned> MappedListSnapshot<T> {
    /// A managed mapped list file's content: a JSON object of arrays of
    /// `T`, or nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Content`](crate::Error::Content) for anything else.
    pub fn parse(content: &[u8]) -> Result<Self> {
        if is_blank(content) {
            return Ok(Self::default());
        }
        let lists: BTreeMap<String, Vec<T>> =
            parse_json(content, "a managed mapped list (a JSON object of arrays)")?;
        Ok(MappedListSnapshot {
            lists: lists
                .into_iter()
                .map(|(key, items)| (key, ListSnapshot::new(items)))
                .collect(),
        })
    }
}

impl<T: Eq + Hash> MappedListSnapshot<T> {
    /// The list of `key`; empty when `key` is not set.
    pub fn get(&self, key: &str) -> &[T] {
        self.lists.get(key).map_or(&[], ListSnapshot::items)
    }

    /// Whether the list of `key` holds `item`, in O(1).
    pub fn contains<Q>(&self, key: &str, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lists.get(key).is_some_and(|list| list.contains(item))
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lists.contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.lists.keys().map(String::as_str)
    }

    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

impl<T> ManagedSnapshot for MappedListSnapshot<T>
where
    T: Eq + Hash + Clone + DeserializeOwned + Send + Sync + 'static,
{
    fn parse(content: &[u8]) -> Result<Self> {
        MappedListSnapshot::parse(content)
    }

    fn len(&self) -> usize {
        MappedListSnapshot::len(self)
    }
}

/// A managed mapped list (`ManagedMappedList` in kingpin-api, a JSON object
/// of arrays on disk), reloaded when its file changes.
///
/// ```
/// use kingpin_client::ManagedMappedListReader;
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.manageddata.app.owners"), r#"{"search": ["ann", "bo"]}"#)?;
/// let owners = ManagedMappedListReader::<String>::open_in(dir.path(), "config.manageddata.app.owners")?;
/// assert!(owners.contains("search", "bo"));
/// assert_eq!(owners.get("search"), ["ann", "bo"]);
/// assert!(owners.get("feed").is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ManagedMappedListReader<T = String> = ManagedReader<MappedListSnapshot<T>>;

impl<T> ManagedReader<MappedListSnapshot<T>>
where
    T: Eq + Hash + Clone + DeserializeOwned + Send + Sync + 'static,
{
    /// A copy of the list of `key`; empty when `key` is not set.
    pub fn get(&self, key: &str) -> Vec<T> {
        self.file.snapshot().get(key).to_vec()
    }

    /// Whether the list of `key` holds `item`, in O(1).
    pub fn contains<Q>(&self, key: &str, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.file.snapshot().contains(key, item)
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
    fn an_object_of_arrays_is_a_mapped_list() {
        let lists = MappedListSnapshot::<String>::parse(br#"{"k": ["x", "y"], "e": []}"#).unwrap();
        assert_eq!(lists.get("k"), ["x", "y"]);
        assert!(lists.contains("k", "x"));
        assert!(!lists.contains("k", "z") && !lists.contains("missing", "x"));
        assert!(lists.get("e").is_empty() && lists.contains_key("e"));
        assert_eq!(lists.keys().collect::<Vec<_>>(), ["e", "k"]);
    }

    #[test]
    fn an_empty_file_is_an_empty_mapped_list() {
        assert!(MappedListSnapshot::<String>::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [&br#"["x"]"#[..], br#"{"k": "x"}"#, br#"{"k": [1]}"#] {
            assert!(MappedListSnapshot::<String>::parse(bad).is_err(), "{bad:?}");
        }
    }
}
