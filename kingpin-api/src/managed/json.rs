//! `ManagedJson<T>`: any serde type as one JSON document.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{to_value, typed, ManagedConfig};
use crate::config::{ConfigName, ConfigRecord, ConfigStore};
use crate::error::{Error, Result};

/// Any serde type `T` kept as one JSON document with sorted keys
/// (KingPin's `ManagedJsonSerializableDataConfig`). Use
/// `ManagedJson<serde_json::Value>` for schema-free JSON.
#[derive(Debug, Clone)]
pub struct ManagedJson<T> {
    config: ManagedConfig,
    shape: PhantomData<fn() -> T>,
}

managed_type!(ManagedJson<T>, "document");

impl<T> ManagedJson<T>
where
    T: Serialize + DeserializeOwned,
{
    /// The document; `None` if the config does not exist or is empty.
    pub async fn get(&self) -> Result<Option<T>> {
        match self.config.read_value().await? {
            None => Ok(None),
            Some(value) => typed(self.name(), "the content", value).map(Some),
        }
    }

    /// Replaces the document.
    pub async fn set(&self, data: &T) -> Result<ConfigRecord> {
        let value = to_value(self.name(), data)?;
        self.write_value("json set", value).await
    }

    /// Replaces the document with JSON text, which must parse as `T`.
    /// Anything else is an `InvalidArgument` error and nothing is written.
    pub async fn set_text(&self, text: &str) -> Result<ConfigRecord> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::invalid(format!(
                "the new content of {} is not JSON ({e}); nothing was written",
                self.name()
            ))
        })?;
        typed::<T>(self.name(), "the new content", value.clone())?;
        self.write_value("json set", value).await
    }

    /// Read-modify-write: `change` gets the current document (`None` if
    /// there is none) and returns the new one. It may run more than once
    /// when other writers race.
    pub async fn update<F>(&self, mut change: F) -> Result<ConfigRecord>
    where
        F: FnMut(Option<T>) -> Result<T>,
    {
        let name = self.name().clone();
        let record = self
            .config
            .modify("json update", |current| {
                let current = match current {
                    None => None,
                    Some(value) => Some(typed(&name, "the content", value)?),
                };
                to_value(&name, &change(current)?).map(Some)
            })
            .await?;
        record.ok_or_else(|| Error::not_found(name.node_path()))
    }

    async fn write_value(&self, message: &str, value: Value) -> Result<ConfigRecord> {
        let record = self
            .config
            .modify(message, |_| Ok(Some(value.clone())))
            .await?;
        record.ok_or_else(|| Error::not_found(self.name().node_path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::test_store;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Limits {
        rps: u32,
        burst: u32,
    }

    fn limits() -> (ConfigStore, ManagedJson<Limits>) {
        let store = test_store();
        let name = ConfigName::parse("config.app.limits").unwrap();
        (store.clone(), ManagedJson::new(store, name))
    }

    #[tokio::test]
    async fn typed_documents_round_trip_with_sorted_keys() {
        let (store, j) = limits();
        assert_eq!(j.get().await.unwrap(), None);
        j.set(&Limits { rps: 10, burst: 20 }).await.unwrap();
        j.update(|current| {
            let mut l = current.unwrap();
            l.rps += 1;
            Ok(l)
        })
        .await
        .unwrap();
        assert_eq!(j.get().await.unwrap(), Some(Limits { rps: 11, burst: 20 }));
        let config = store.read(j.name()).await.unwrap().unwrap();
        assert_eq!(&config.content[..], br#"{"burst": 20, "rps": 11}"#);
    }

    #[tokio::test]
    async fn text_that_is_not_json_or_not_the_type_is_refused() {
        let (store, j) = limits();
        j.set(&Limits { rps: 1, burst: 1 }).await.unwrap();
        for bad in ["{not json", r#"{"rps": "fast"}"#] {
            let err = j.set_text(bad).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
        assert_eq!(store.history(j.name()).await.unwrap().len(), 1);
    }
}
