//! The decider (design.md §5): named values in [0, 100] that switch code
//! paths and experiments at run time.
//!
//! The [`Decider`] snapshot and its formulas live in `kingpin-client`, so
//! applications that only read the local decider file need not depend on
//! this crate; it is re-exported here.

use std::collections::BTreeMap;

use crate::config::{ConfigName, ConfigStore};
use crate::error::{Error, Result};
use crate::managed::ManagedHashMap;

pub use kingpin_client::decider::{Decider, DECIDER_CONFIG};

/// Checks a decider name (non-empty, lower case, no spaces or control
/// characters) and value (finite, in [0, 100]); what
/// [`ManagedDecider::set`] checks before writing.
pub fn validate(name: &str, value: f64) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(format!(
            "decider name {name:?} must be non-empty, without spaces or control characters"
        )));
    }
    if name.to_lowercase() != name {
        return Err(Error::invalid(format!(
            "decider name {name:?} must be lower case"
        )));
    }
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(Error::invalid(format!(
            "decider value {value} for {name:?} is outside [0, 100]"
        )));
    }
    Ok(())
}

/// The decider values in the store: set, list and load them.
#[derive(Debug, Clone)]
pub struct ManagedDecider {
    map: ManagedHashMap<f64>,
}

impl ManagedDecider {
    /// The decider in `config.manageddata.admin.decider`.
    pub fn new(store: ConfigStore) -> Self {
        let name = ConfigName::parse(DECIDER_CONFIG).expect("DECIDER_CONFIG is a valid name");
        ManagedDecider {
            map: ManagedHashMap::new(store, name),
        }
    }

    /// Records `author` as the writer of every change (default: `$USER`).
    pub fn with_author(mut self, author: impl Into<String>) -> Self {
        self.map = self.map.with_author(author);
        self
    }

    /// Records `message` with every change instead of a generated one.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.map = self.map.with_message(message);
        self
    }

    /// Sets `name` to `value` in [0, 100]; anything else is an
    /// `InvalidArgument` error and nothing is written.
    pub async fn set(&self, name: &str, value: f64) -> Result<()> {
        validate(name, value)?;
        self.map.set(name, value).await?;
        Ok(())
    }

    /// The value of `name`, if set.
    pub async fn get(&self, name: &str) -> Result<Option<f64>> {
        self.map.get(&name.to_lowercase()).await
    }

    /// Every value, by name.
    pub async fn list(&self) -> Result<BTreeMap<String, f64>> {
        self.map.get_all().await
    }

    /// Removes `name` (looked up lower case, as `get` does); whether it
    /// was set.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        self.map.remove(&name.to_lowercase()).await
    }

    /// A snapshot to decide with.
    pub async fn load(&self) -> Result<Decider> {
        Ok(Decider::from_values(self.list().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_outside_the_range_are_refused_and_nothing_is_written() {
        let decider = ManagedDecider::new(crate::managed::test_store());
        decider.set("ok", 12.5).await.unwrap();
        for bad in [-0.1, 100.01, f64::NAN, f64::INFINITY] {
            let err = decider.set("ok", bad).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("outside [0, 100]"), "{err}");
        }
        assert!(decider.set("Upper", 1.0).await.is_err());
        assert!(decider.set("has space", 1.0).await.is_err());
        assert_eq!(decider.list().await.unwrap().len(), 1);
        assert_eq!(decider.get("ok").await.unwrap(), Some(12.5));
        assert_eq!(decider.load().await.unwrap().value("ok"), Some(12.5));
    }
}
