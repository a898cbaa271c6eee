//! [`ManagedListReader`]: a managed list's local file.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;

use serde::de::DeserializeOwned;

use super::{is_blank, parse_json, ManagedReader, ManagedSnapshot};
use crate::error::Result;

/// The items of a managed list, in file order, with an index for O(1)
/// membership tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSnapshot<T: Eq + Hash> {
    items: Vec<T>,
    index: HashSet<T>,
}

impl<T: Eq + Hash> Default for ListSnapshot<T> {
    fn default() -> Self {
        ListSnapshot {
            items: Vec::new(),
            index: HashSet::new(),
        }
    }
}

impl<T: Eq + Hash + Clone> ListSnapshot<T> {
    /// A snapshot of `items`, in this order.
    pub fn new(items: Vec<T>) -> Self {
        let index = items.iter().cloned().collect();
        ListSnapshot { items, index }
    }
}

impl<T: Eq + Hash + Clone + DeserializeOwned> ListSnapshot<T> {
    /// A managed list file's content: a JSON array of `T`, or nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Content`](crate::Error::Content) for anything else.
    pub fn parse(content: &[u8]) -> Result<Self> {
        if is_blank(content) {
            return Ok(Self::default());
        }
        Ok(Self::new(parse_json(
            content,
            "a managed list (a JSON array)",
        )?))
    }
}

impl<T: Eq + Hash> ListSnapshot<T> {
    /// The items, in file order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Whether `item` is in the list, in O(1).
    pub fn contains<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.contains(item)
    }

    /// How many items the list has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> ManagedSnapshot for ListSnapshot<T>
where
    T: Eq + Hash + Clone + DeserializeOwned + Send + Sync + 'static,
{
    fn parse(content: &[u8]) -> Result<Self> {
        ListSnapshot::parse(content)
    }

    fn len(&self) -> usize {
        ListSnapshot::len(self)
    }
}

/// A managed list (`ManagedList` in kingpin-api, a JSON array on disk),
/// reloaded when its file changes.
///
/// ```
/// use kingpin_client::ManagedListReader;
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.manageddata.spam.blacklist"), r#"["1.2.3.4", "5.6.7.8"]"#)?;
/// let blacklist = ManagedListReader::<String>::open_in(dir.path(), "config.manageddata.spam.blacklist")?;
/// assert!(blacklist.contains("1.2.3.4"));
/// assert_eq!(blacklist.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ManagedListReader<T = String> = ManagedReader<ListSnapshot<T>>;

impl<T> ManagedReader<ListSnapshot<T>>
where
    T: Eq + Hash + Clone + DeserializeOwned + Send + Sync + 'static,
{
    /// A copy of the items, in file order ([`snapshot`](Self::snapshot)
    /// reads them without copying).
    pub fn items(&self) -> Vec<T> {
        self.file.snapshot().items().to_vec()
    }

    /// Whether `item` is in the list, in O(1).
    pub fn contains<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.file.snapshot().contains(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_array_is_a_list_in_file_order() {
        let list = ListSnapshot::<String>::parse(br#"["b", "a"]"#).unwrap();
        assert_eq!(list.items(), ["b", "a"]);
        assert!(list.contains("a"));
        assert!(!list.contains("c"));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn an_empty_file_is_an_empty_list() {
        for empty in [&b""[..], b"  \n", b"[]"] {
            assert!(ListSnapshot::<u64>::parse(empty).unwrap().is_empty());
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [&br#"{"a": 1}"#[..], br#"["a", 1]"#, b"\"a\"", b"[1,"] {
            assert!(ListSnapshot::<String>::parse(bad).is_err(), "{bad:?}");
        }
    }
}
