//! `ManagedMappedList`: string keys to lists of distinct items.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::list::describe;
use super::{append_missing, json_type, remove_all, to_value, typed, ManagedConfig};
use crate::config::{ConfigName, ConfigStore};
use crate::error::{Error, Result};

/// A map from string keys to lists of distinct items of type `T`, stored
/// as a JSON object of arrays with sorted keys (KingPin's
/// `ManagedMappedList` with its default deduplication).
#[derive(Debug, Clone)]
pub struct ManagedMappedList<T = String> {
    config: ManagedConfig,
    shape: PhantomData<fn() -> T>,
}

managed_type!(ManagedMappedList<T>, "mapped list");

impl<T> ManagedMappedList<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Every key with its list.
    pub async fn get_all(&self) -> Result<BTreeMap<String, Vec<T>>> {
        self.lists(self.config.read_value().await?)?
            .into_iter()
            .map(|(key, items)| Ok((key.clone(), self.typed_items(&key, items)?)))
            .collect()
    }

    /// The list at `key`; empty if there is none.
    pub async fn get(&self, key: &str) -> Result<Vec<T>> {
        let items = self
            .lists(self.config.read_value().await?)?
            .remove(key)
            .unwrap_or_default();
        self.typed_items(key, items)
    }

    /// The keys, sorted.
    pub async fn keys(&self) -> Result<Vec<String>> {
        Ok(self
            .lists(self.config.read_value().await?)?
            .into_keys()
            .collect())
    }

    /// Whether the list at `key` holds `item`.
    pub async fn contains(&self, key: &str, item: &T) -> Result<bool> {
        let item = to_value(self.name(), item)?;
        Ok(self
            .lists(self.config.read_value().await?)?
            .get(key)
            .is_some_and(|items| items.contains(&item)))
    }

    /// Appends `item` to the list at `key` unless it is there; whether it
    /// was added.
    pub async fn add(&self, key: &str, item: T) -> Result<bool> {
        Ok(self.add_many(key, [item]).await? == 1)
    }

    /// Appends every item not already in the list at `key`, in one version;
    /// how many were added.
    pub async fn add_many(&self, key: &str, items: impl IntoIterator<Item = T>) -> Result<usize> {
        let new = self.values(items)?;
        let mut added = 0;
        self.config
            .modify(
                &format!("mapped list add {} to {key:?}", describe(&new)),
                |current| {
                    let mut lists = self.lists(current)?;
                    added = append_missing(lists.entry(key.to_owned()).or_default(), &new);
                    Ok((added > 0).then(|| to_object(lists)))
                },
            )
            .await?;
        Ok(added)
    }

    /// Removes `item` from the list at `key`; whether it was there.
    pub async fn remove(&self, key: &str, item: &T) -> Result<bool> {
        Ok(self.remove_many(key, [item]).await? == 1)
    }

    /// Removes every given item from the list at `key`, in one version; how
    /// many were there. An emptied list keeps its key, as in KingPin.
    pub async fn remove_many<'a>(
        &self,
        key: &str,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<usize>
    where
        T: 'a,
    {
        let gone = items
            .into_iter()
            .map(|item| to_value(self.name(), item))
            .collect::<Result<Vec<_>>>()?;
        let mut removed = 0;
        self.config
            .modify(
                &format!("mapped list remove {} from {key:?}", describe(&gone)),
                |current| {
                    let mut lists = self.lists(current)?;
                    removed = lists.get_mut(key).map_or(0, |list| remove_all(list, &gone));
                    Ok((removed > 0).then(|| to_object(lists)))
                },
            )
            .await?;
        Ok(removed)
    }

    /// Replaces the list at `key` (duplicates dropped, first kept).
    pub async fn set(&self, key: &str, items: impl IntoIterator<Item = T>) -> Result<()> {
        let mut list = Vec::new();
        append_missing(&mut list, &self.values(items)?);
        self.config
            .modify(&format!("mapped list set {key:?}"), |current| {
                let mut lists = self.lists(current)?;
                lists.insert(key.to_owned(), list.clone());
                Ok(Some(to_object(lists)))
            })
            .await?;
        Ok(())
    }

    /// Removes the key and its list; whether it was there.
    pub async fn remove_key(&self, key: &str) -> Result<bool> {
        let mut removed = false;
        self.config
            .modify(&format!("mapped list remove key {key:?}"), |current| {
                let mut lists = self.lists(current)?;
                removed = lists.remove(key).is_some();
                Ok(removed.then(|| to_object(lists)))
            })
            .await?;
        Ok(removed)
    }

    /// Removes every key.
    pub async fn clear(&self) -> Result<()> {
        self.config
            .modify("mapped list clear", |current| {
                self.lists(current)?;
                Ok(Some(Value::Object(Map::new())))
            })
            .await?;
        Ok(())
    }

    fn values(&self, items: impl IntoIterator<Item = T>) -> Result<Vec<Value>> {
        items
            .into_iter()
            .map(|item| to_value(self.name(), &item))
            .collect()
    }

    fn typed_items(&self, key: &str, items: Vec<Value>) -> Result<Vec<T>> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| typed(self.name(), &format!("item {i} of {key:?}"), item))
            .collect()
    }

    /// The stored object of arrays, each item checked against `T`.
    fn lists(&self, value: Option<Value>) -> Result<BTreeMap<String, Vec<Value>>> {
        let map = match value {
            None => return Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "{} holds {}, not a mapped list",
                    self.name(),
                    json_type(&other)
                )))
            }
        };
        let mut lists = BTreeMap::new();
        for (key, value) in map {
            let Value::Array(items) = value else {
                return Err(Error::invalid(format!(
                    "{}: the value of {key:?} is {}, not a list",
                    self.name(),
                    json_type(&value)
                )));
            };
            self.typed_items(&key, items.clone())?;
            lists.insert(key, items);
        }
        Ok(lists)
    }
}

fn to_object(lists: BTreeMap<String, Vec<Value>>) -> Value {
    Value::Object(
        lists
            .into_iter()
            .map(|(key, items)| (key, Value::Array(items)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::test_store;

    #[tokio::test]
    async fn lists_per_key_in_the_kingpin_format() {
        let store = test_store();
        let m = ManagedMappedList::<String>::new(
            store.clone(),
            ConfigName::parse("config.manageddata.test.mapped").unwrap(),
        );
        assert!(m.add("web", "a".into()).await.unwrap());
        assert_eq!(
            m.add_many("db", ["x".into(), "y".into(), "x".into()])
                .await
                .unwrap(),
            2
        );
        assert!(m.contains("db", &"y".into()).await.unwrap());
        assert!(!m.contains("web", &"y".into()).await.unwrap());
        assert!(m.remove("db", &"x".into()).await.unwrap());
        let config = store.read(m.name()).await.unwrap().unwrap();
        assert_eq!(&config.content[..], br#"{"db": ["y"], "web": ["a"]}"#);
        m.set("web", ["b".into(), "b".into(), "c".into()])
            .await
            .unwrap();
        assert_eq!(m.get("web").await.unwrap(), ["b", "c"]);
        assert!(m.remove_key("db").await.unwrap());
        assert_eq!(m.keys().await.unwrap(), ["web"]);
        assert_eq!(m.get("nope").await.unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_value_that_is_not_a_list_is_refused() {
        let store = test_store();
        let name = ConfigName::parse("config.manageddata.test.mapped").unwrap();
        store
            .write(&name, br#"{"k": 1}"#.to_vec().into(), &Default::default())
            .await
            .unwrap();
        let m = ManagedMappedList::<String>::new(store, name);
        let err = m.add("k", "x".into()).await.unwrap_err();
        assert!(err.to_string().contains("not a list"), "{err}");
    }
}
