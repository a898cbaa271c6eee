//! `ManagedHashMap`: string keys to values of one type, in one config.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{json_type, to_value, typed, ManagedConfig};
use crate::config::{ConfigName, ConfigStore};
use crate::error::{Error, Result};

/// A map from string keys to values of type `V`, stored as a JSON object
/// with sorted keys (KingPin's `ManagedHashMap` and its file format).
#[derive(Debug, Clone)]
pub struct ManagedHashMap<V = String> {
    config: ManagedConfig,
    shape: PhantomData<fn() -> V>,
}

managed_type!(ManagedHashMap<V>, "map");

impl<V> ManagedHashMap<V>
where
    V: Serialize + DeserializeOwned,
{
    /// The whole map; empty if the config does not exist.
    pub async fn get_all(&self) -> Result<BTreeMap<String, V>> {
        self.entries(self.config.read_value().await?)?
            .into_iter()
            .map(|(key, value)| Ok((key.clone(), self.typed_value(&key, value)?)))
            .collect()
    }

    /// The value at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<V>> {
        match self.entries(self.config.read_value().await?)?.remove(key) {
            None => Ok(None),
            Some(value) => self.typed_value(key, value).map(Some),
        }
    }

    /// The keys, sorted.
    pub async fn keys(&self) -> Result<Vec<String>> {
        Ok(self
            .entries(self.config.read_value().await?)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// Whether `key` is in the map.
    pub async fn contains(&self, key: &str) -> Result<bool> {
        Ok(self
            .entries(self.config.read_value().await?)?
            .contains_key(key))
    }

    /// Sets `key` to `value`; whether anything changed.
    pub async fn set(&self, key: impl Into<String>, value: V) -> Result<bool> {
        Ok(self.set_many([(key.into(), value)]).await? == 1)
    }

    /// Sets every given key, in one version; how many entries changed.
    pub async fn set_many(&self, entries: impl IntoIterator<Item = (String, V)>) -> Result<usize> {
        let new = entries
            .into_iter()
            .map(|(key, value)| Ok((key, to_value(self.name(), &value)?)))
            .collect::<Result<Vec<_>>>()?;
        let message = match new.as_slice() {
            [(key, _)] => format!("map set {key:?}"),
            many => format!("map set {} keys", many.len()),
        };
        let mut changed = 0;
        self.config
            .modify(&message, |current| {
                let mut map = self.entries(current)?;
                changed = 0;
                for (key, value) in &new {
                    if map.get(key) != Some(value) {
                        map.insert(key.clone(), value.clone());
                        changed += 1;
                    }
                }
                Ok((changed > 0).then_some(Value::Object(map)))
            })
            .await?;
        Ok(changed)
    }

    /// Removes `key`; whether it was there.
    pub async fn remove(&self, key: &str) -> Result<bool> {
        Ok(self.remove_many([key]).await? == 1)
    }

    /// Removes every given key, in one version; how many were there.
    pub async fn remove_many<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<usize> {
        let keys: Vec<&str> = keys.into_iter().collect();
        let message = match keys.as_slice() {
            [key] => format!("map remove {key:?}"),
            many => format!("map remove {} keys", many.len()),
        };
        let mut removed = 0;
        self.config
            .modify(&message, |current| {
                let mut map = self.entries(current)?;
                removed = keys.iter().filter(|k| map.remove(**k).is_some()).count();
                Ok((removed > 0).then_some(Value::Object(map)))
            })
            .await?;
        Ok(removed)
    }

    /// Replaces the whole map, in one version.
    pub async fn set_all(&self, entries: impl IntoIterator<Item = (String, V)>) -> Result<()> {
        let map = entries
            .into_iter()
            .map(|(key, value)| Ok((key, to_value(self.name(), &value)?)))
            .collect::<Result<Map<String, Value>>>()?;
        let map = Value::Object(map);
        self.config
            .modify("map set all", |current| {
                self.entries(current)?;
                Ok(Some(map.clone()))
            })
            .await?;
        Ok(())
    }

    /// Empties the map (KingPin's `delete`).
    pub async fn clear(&self) -> Result<()> {
        self.set_all([]).await
    }

    fn typed_value(&self, key: &str, value: Value) -> Result<V> {
        typed(self.name(), &format!("the value of {key:?}"), value)
    }

    /// The stored object, each value checked against `V`.
    fn entries(&self, value: Option<Value>) -> Result<Map<String, Value>> {
        match value {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => {
                for (key, value) in &map {
                    self.typed_value(key, value.clone())?;
                }
                Ok(map)
            }
            Some(other) => Err(Error::invalid(format!(
                "{} holds {}, not a map",
                self.name(),
                json_type(&other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::test_store;

    fn map<V: Serialize + DeserializeOwned>(store: &ConfigStore) -> ManagedHashMap<V> {
        ManagedHashMap::new(
            store.clone(),
            ConfigName::parse("config.manageddata.test.map").unwrap(),
        )
    }

    #[tokio::test]
    async fn set_get_remove_and_sorted_keys_on_disk() {
        let store = test_store();
        let m = map::<u64>(&store);
        assert!(m.set("zeta", 1).await.unwrap());
        assert!(!m.set("zeta", 1).await.unwrap(), "same value: no change");
        assert_eq!(
            m.set_many([("alpha".into(), 2), ("zeta".into(), 3)])
                .await
                .unwrap(),
            2
        );
        assert_eq!(m.get("zeta").await.unwrap(), Some(3));
        assert_eq!(m.get("nope").await.unwrap(), None);
        assert_eq!(m.keys().await.unwrap(), ["alpha", "zeta"]);
        let config = store.read(m.name()).await.unwrap().unwrap();
        assert_eq!(&config.content[..], br#"{"alpha": 2, "zeta": 3}"#);
        assert!(m.remove("alpha").await.unwrap());
        assert!(!m.contains("alpha").await.unwrap());
        m.clear().await.unwrap();
        assert!(m.get_all().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn values_of_the_wrong_type_are_refused() {
        let store = test_store();
        map::<String>(&store).set("k", "text".into()).await.unwrap();
        let err = map::<u64>(&store).set("other", 1).await.unwrap_err();
        assert!(err.to_string().contains(r#"the value of "k""#), "{err}");
        assert_eq!(map::<String>(&store).keys().await.unwrap(), ["k"]);
    }
}
