//! `ManagedList`: a list of distinct items in one config.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{append_missing, json_type, remove_all, to_value, typed, ManagedConfig};
use crate::config::{ConfigName, ConfigStore};
use crate::error::{Error, Result};

/// A list of distinct items of type `T`, stored as a JSON array
/// (KingPin's `ManagedList`; its local file is the array itself).
///
/// `add` skips items already present; `set` replaces the list as given.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), kingpin_api::Error> {
/// use std::sync::Arc;
/// use kingpin_api::{ConfigName, ConfigStore, MemoryBlobStore, MemoryServer};
/// use kingpin_api::managed::ManagedList;
///
/// let store = ConfigStore::new(Arc::new(MemoryServer::new().connect()), Arc::new(MemoryBlobStore::new()));
/// let blacklist = ManagedList::<String>::new(store, ConfigName::parse("config.manageddata.spam.blacklist")?);
/// assert!(blacklist.add("1.2.3.4".to_owned()).await?);
/// assert!(!blacklist.add("1.2.3.4".to_owned()).await?, "already there");
/// assert_eq!(blacklist.get().await?, ["1.2.3.4"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ManagedList<T = String> {
    config: ManagedConfig,
    shape: PhantomData<fn() -> T>,
}

managed_type!(ManagedList<T>, "list");

impl<T> ManagedList<T>
where
    T: Serialize + DeserializeOwned,
{
    /// The items, in order; empty if the config does not exist.
    pub async fn get(&self) -> Result<Vec<T>> {
        let items = self.items(self.config.read_value().await?)?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| typed(self.name(), &format!("item {i}"), item))
            .collect()
    }

    /// Whether `item` is in the list.
    pub async fn contains(&self, item: &T) -> Result<bool> {
        let item = to_value(self.name(), item)?;
        Ok(self.items(self.config.read_value().await?)?.contains(&item))
    }

    /// The number of items.
    pub async fn count(&self) -> Result<usize> {
        Ok(self.items(self.config.read_value().await?)?.len())
    }

    /// Appends `item` unless it is already there; whether it was added.
    pub async fn add(&self, item: T) -> Result<bool> {
        Ok(self.add_many([item]).await? == 1)
    }

    /// Appends every item not already there, in one version; how many were
    /// added.
    pub async fn add_many(&self, items: impl IntoIterator<Item = T>) -> Result<usize> {
        let new = self.values(items)?;
        let mut added = 0;
        self.config
            .modify(&format!("list add {}", describe(&new)), |current| {
                let mut list = self.items(current)?;
                added = append_missing(&mut list, &new);
                Ok((added > 0).then_some(Value::Array(list)))
            })
            .await?;
        Ok(added)
    }

    /// Removes `item`; whether it was there.
    pub async fn remove(&self, item: &T) -> Result<bool> {
        Ok(self.remove_many([item]).await? == 1)
    }

    /// Removes every given item, in one version; how many were there.
    pub async fn remove_many<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<usize>
    where
        T: 'a,
    {
        let gone = items
            .into_iter()
            .map(|item| to_value(self.name(), item))
            .collect::<Result<Vec<_>>>()?;
        let mut removed = 0;
        self.config
            .modify(&format!("list remove {}", describe(&gone)), |current| {
                let mut list = self.items(current)?;
                removed = remove_all(&mut list, &gone);
                Ok((removed > 0).then_some(Value::Array(list)))
            })
            .await?;
        Ok(removed)
    }

    /// Replaces the whole list with `items`, in one version.
    pub async fn set(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let list = Value::Array(self.values(items)?);
        self.config
            .modify("list set", |current| {
                self.items(current)?;
                Ok(Some(list.clone()))
            })
            .await?;
        Ok(())
    }

    /// Empties the list (KingPin's `delete` and `clear`).
    pub async fn clear(&self) -> Result<()> {
        self.set([]).await
    }

    fn values(&self, items: impl IntoIterator<Item = T>) -> Result<Vec<Value>> {
        items
            .into_iter()
            .map(|item| to_value(self.name(), &item))
            .collect()
    }

    /// The stored array, each item checked against `T`.
    fn items(&self, value: Option<Value>) -> Result<Vec<Value>> {
        match value {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    typed::<T>(self.name(), &format!("item {i}"), item.clone())?;
                }
                Ok(items)
            }
            Some(other) => Err(Error::invalid(format!(
                "{} holds {}, not a list",
                self.name(),
                json_type(&other)
            ))),
        }
    }
}

/// A short description of changed items for the version's message.
pub(super) fn describe(items: &[Value]) -> String {
    match items {
        [one] => super::to_kingpin_json(one),
        many => format!("{} items", many.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::test_store;

    fn list<T: Serialize + DeserializeOwned>(store: &ConfigStore) -> ManagedList<T> {
        ManagedList::new(
            store.clone(),
            ConfigName::parse("config.manageddata.test.list").unwrap(),
        )
    }

    #[tokio::test]
    async fn add_remove_contains_and_the_kingpin_format() {
        let store = test_store();
        let l = list::<String>(&store);
        assert_eq!(l.get().await.unwrap(), Vec::<String>::new());
        assert!(l.add("b".into()).await.unwrap());
        assert_eq!(
            l.add_many(["a".into(), "b".into(), "c".into()])
                .await
                .unwrap(),
            2
        );
        assert!(l.contains(&"c".into()).await.unwrap());
        assert_eq!(l.count().await.unwrap(), 3);
        assert!(l.remove(&"a".into()).await.unwrap());
        assert!(!l.remove(&"a".into()).await.unwrap());
        let config = store.read(l.name()).await.unwrap().unwrap();
        assert_eq!(&config.content[..], br#"["b", "c"]"#);
        assert_eq!(config.record.message, r#"list remove "a""#);
        l.clear().await.unwrap();
        assert_eq!(l.count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn no_op_changes_write_no_version() {
        let store = test_store();
        let l = list::<u32>(&store);
        l.add(7).await.unwrap();
        l.add(7).await.unwrap();
        l.remove(&8).await.unwrap();
        assert_eq!(store.history(l.name()).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn typed_items_are_checked() {
        let store = test_store();
        list::<String>(&store).add("x".into()).await.unwrap();
        let numbers = list::<u32>(&store);
        let err = numbers.add(1).await.unwrap_err();
        assert!(err.to_string().contains("item 0"), "{err}");
        assert_eq!(list::<String>(&store).get().await.unwrap(), ["x"]);
    }

    #[tokio::test]
    async fn a_non_list_config_is_refused_and_left_alone() {
        let store = test_store();
        let l = list::<String>(&store);
        for (content, complaint) in [(&b"{\"a\": 1}"[..], "an object"), (b"not json", "JSON")] {
            store
                .write(l.name(), content.to_vec().into(), &Default::default())
                .await
                .unwrap();
            let err = l.add("x".into()).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(complaint), "{err}");
            let stored = store.read(l.name()).await.unwrap().unwrap();
            assert_eq!(&stored.content[..], content);
        }
    }
}
