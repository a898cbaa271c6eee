//! Managed data structures (design.md §5): a list, a map, a map of lists
//! and any serde type, each kept in one config of the [`ConfigStore`].
//!
//! Every change is an optimistic read-modify-write against the store
//! ([`ConfigStore::update`]), so concurrent writers never lose each other's
//! changes; a conflict is retried, never reported. Content is written in
//! KingPin's exact file format (see [`to_kingpin_json`]), so applications
//! reading KingPin's files keep working.
//!
//! Content that is not JSON of the expected shape is an `InvalidArgument`
//! error naming the config, and nothing is written. A config that does not
//! exist yet reads as empty, as in KingPin.

/// The constructor and the change-attribution methods every managed type
/// has; each type adds its own operations.
macro_rules! managed_type {
    ($ty:ident<$param:ident>, $what:literal) => {
        impl<$param> $ty<$param>
        where
            $param: serde::Serialize + serde::de::DeserializeOwned,
        {
            #[doc = concat!("The ", $what, " kept in config `name`.")]
            pub fn new(store: ConfigStore, name: ConfigName) -> Self {
                $ty {
                    config: super::ManagedConfig::new(store, name),
                    shape: std::marker::PhantomData,
                }
            }

            /// Records `author` as the writer of every change (default: `$USER`).
            pub fn with_author(mut self, author: impl Into<String>) -> Self {
                self.config.author = author.into();
                self
            }

            /// Records `message` with every change instead of a generated
            /// description of it.
            pub fn with_message(mut self, message: impl Into<String>) -> Self {
                self.config.message = Some(message.into());
                self
            }

            #[doc = concat!("The config holding the ", $what, ".")]
            pub fn name(&self) -> &ConfigName {
                &self.config.name
            }
        }
    };
}

mod json;
mod kingpin_json;
mod list;
mod map;
mod mapped_list;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::{ChangeInfo, ConfigName, ConfigRecord, ConfigStore};
use crate::error::{Error, Result};

pub use json::ManagedJson;
pub use kingpin_json::to_kingpin_json;
pub use list::ManagedList;
pub use map::ManagedHashMap;
pub use mapped_list::ManagedMappedList;

/// The prefix of managed data config names: `config.manageddata.<domain>.<key>`.
pub const MANAGED_DATA_PREFIX: &str = "config.manageddata";

/// The config name KingPin gives the managed data `domain`/`key`:
/// `config.manageddata.<domain>.<key>`.
///
/// ```
/// let name = kingpin_api::managed::managed_data_name("spam", "blacklist")?;
/// assert_eq!(name.as_str(), "config.manageddata.spam.blacklist");
/// # Ok::<(), kingpin_api::Error>(())
/// ```
pub fn managed_data_name(domain: &str, key: &str) -> Result<ConfigName> {
    for (what, part) in [("domain", domain), ("key", key)] {
        if part.is_empty() || part.contains('.') {
            return Err(Error::invalid(format!(
                "managed data {what} {part:?} must be one non-empty name component, without '.'"
            )));
        }
    }
    ConfigName::parse(&format!("{MANAGED_DATA_PREFIX}.{domain}.{key}"))
}

/// A config in the store plus who changes it: what every managed structure
/// is built on.
#[derive(Debug, Clone)]
struct ManagedConfig {
    store: ConfigStore,
    name: ConfigName,
    author: String,
    // Replaces the generated description of each change when set.
    message: Option<String>,
}

impl ManagedConfig {
    fn new(store: ConfigStore, name: ConfigName) -> Self {
        ManagedConfig {
            store,
            name,
            author: default_author(),
            message: None,
        }
    }

    /// The current JSON value, `None` when the config does not exist or is
    /// empty (KingPin wrote an empty file for cleared JSON data).
    async fn read_value(&self) -> Result<Option<Value>> {
        match self.store.read(&self.name).await? {
            None => Ok(None),
            Some(config) => parse_content(&self.name, &config.content),
        }
    }

    /// Applies `change` to the current value until it lands;
    /// `change` returns the new value, or `None` to leave it as is.
    async fn modify<F>(&self, message: &str, mut change: F) -> Result<Option<ConfigRecord>>
    where
        F: FnMut(Option<Value>) -> Result<Option<Value>>,
    {
        let message = self.message.as_deref().unwrap_or(message);
        let info = ChangeInfo::new(self.author.clone(), message);
        let name = &self.name;
        self.store
            .update(name, &info, |content| {
                let current = match content {
                    None => None,
                    Some(bytes) => parse_content(name, bytes)?,
                };
                Ok(change(current)?.map(|next| Bytes::from(to_kingpin_json(&next))))
            })
            .await
    }
}

/// Who writes when no author is set: the `USER` of this process.
fn default_author() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned())
}

fn parse_content(name: &ConfigName, content: &[u8]) -> Result<Option<Value>> {
    if content.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(content).map(Some).map_err(|e| {
        Error::invalid(format!(
            "{name} does not hold JSON ({e}); nothing was changed"
        ))
    })
}

/// Appends each of `items` not already in `list`; how many were appended.
fn append_missing(list: &mut Vec<Value>, items: &[Value]) -> usize {
    let before = list.len();
    for item in items {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    list.len() - before
}

/// Removes every occurrence of each of `items` from `list`; how many
/// elements went.
fn remove_all(list: &mut Vec<Value>, items: &[Value]) -> usize {
    let before = list.len();
    list.retain(|item| !items.contains(item));
    before - list.len()
}

/// The JSON type name of `value`, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` converted to `T`, or an error saying which config and item did
/// not fit.
fn typed<T: DeserializeOwned>(name: &ConfigName, what: &str, value: Value) -> Result<T> {
    let found = json_type(&value);
    serde_json::from_value(value).map_err(|e| {
        Error::invalid(format!(
            "{what} of {name} is {found}, which does not fit the expected type: {e}"
        ))
    })
}

/// `value` as JSON; serde types that cannot be JSON (maps with non-string
/// keys) are an `InvalidArgument` error.
fn to_value<T: Serialize>(name: &ConfigName, value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| {
        Error::invalid(format!(
            "a value for {name} is not representable as JSON: {e}"
        ))
    })
}

/// A config store over fresh in-memory backends, for unit tests.
#[cfg(test)]
pub(crate) fn test_store() -> ConfigStore {
    use crate::memory::{MemoryBlobStore, MemoryServer};
    use std::sync::Arc;
    ConfigStore::new(
        Arc::new(MemoryServer::new().connect()),
        Arc::new(MemoryBlobStore::new()),
    )
}
