//! The decider (design.md §5): named values in [0, 100] that switch code
//! paths and experiments at run time.

use std::collections::BTreeMap;
use std::fmt::Display;

use md5::{Digest, Md5};
use rand::Rng;

use crate::config::{ConfigName, ConfigStore};
use crate::error::{Error, Result};
use crate::managed::ManagedHashMap;

/// The config holding every decider value, as in KingPin.
pub const DECIDER_CONFIG: &str = "config.manageddata.admin.decider";

/// A snapshot of decider values, evaluated without I/O. Lookups never
/// fail: a decider that is not set counts as 0 (or the default given).
///
/// ```
/// use kingpin_api::decider::Decider;
/// let decider = Decider::from_values([("new_feed".to_owned(), 20.0)]);
/// // The same id always gets the same answer for a flag...
/// assert_eq!(decider.decide_for("new_feed", 42), decider.decide_for("new_feed", 42));
/// // ...and a flag nobody set is off.
/// assert!(!decider.decide_for("unknown", 42));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decider {
    values: BTreeMap<String, f64>,
}

impl Decider {
    /// A decider over `values` (names are looked up lowercase, as in
    /// KingPin).
    pub fn from_values(values: impl IntoIterator<Item = (String, f64)>) -> Self {
        Decider {
            values: values
                .into_iter()
                .map(|(name, value)| (name.to_lowercase(), value))
                .collect(),
        }
    }

    /// A decider from the decider config's content (a JSON object of name
    /// to number), e.g. the monitor's local file.
    pub fn from_json(content: &[u8]) -> Result<Self> {
        let values: BTreeMap<String, f64> = serde_json::from_slice(content).map_err(|e| {
            Error::invalid(format!(
                "decider content is not a JSON object of numbers: {e}"
            ))
        })?;
        Ok(Decider::from_values(values))
    }

    /// Every value, by name.
    pub fn values(&self) -> &BTreeMap<String, f64> {
        &self.values
    }

    /// The value of `name`, if set.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.get(&name.to_lowercase()).copied()
    }

    /// Random: true with probability value/100 (`false` when unset).
    pub fn decide(&self, name: &str) -> bool {
        self.decide_or(name, false)
    }

    /// As [`decide`](Self::decide), with `default` when the value is unset.
    pub fn decide_or(&self, name: &str, default: bool) -> bool {
        let value = self
            .value(name)
            .unwrap_or(if default { 100.0 } else { 0.0 });
        if value >= 100.0 {
            return true;
        }
        if value <= 0.0 {
            return false;
        }
        rand::rng().random_range(0.0..100.0) < value
    }

    /// Deterministic per id and salted by the flag name, so flags at the
    /// same value pick independent sets of ids (KingPin's `id % 100` put
    /// every experiment on the same users). Fractional values count, to
    /// 0.01: the id's bucket is KingPin's hashed bucket (see
    /// [`is_hashed_id_in_experiment`](Self::is_hashed_id_in_experiment))
    /// refined by the next two decimal digits of the same hash, so at
    /// whole-number values both agree on every id.
    pub fn decide_for(&self, name: &str, id: impl Display) -> bool {
        let Some(value) = self.value(name) else {
            return false;
        };
        let hash = kingpin_hash(name, &id);
        let bucket = (hash % 100) as f64 + ((hash / 100) % 100) as f64 / 100.0;
        bucket < value
    }

    /// KingPin's `is_hashed_id_in_experiment`, bit for bit:
    /// `int(md5("decider_" + name + str(id)).hexdigest(), 16) % 100 < value`.
    /// Ids land in the same buckets as under KingPin.
    pub fn is_hashed_id_in_experiment(&self, id: impl Display, name: &str) -> bool {
        let value = self.value(name).unwrap_or(0.0);
        f64::from(Self::kingpin_bucket(name, id)) < value
    }

    /// The bucket in [0, 100) KingPin's hashed formula puts `id` in for
    /// flag `name`.
    pub fn kingpin_bucket(name: &str, id: impl Display) -> u8 {
        (kingpin_hash(name, &id) % 100) as u8
    }
}

/// The md5 of `"decider_" + name + id` as one 128-bit integer, which is
/// what Python's `int(hexdigest, 16)` computes.
fn kingpin_hash(name: &str, id: &dyn Display) -> u128 {
    let digest = Md5::digest(format!("decider_{name}{id}").as_bytes());
    u128::from_be_bytes(digest.into())
}

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

    #[test]
    fn the_hash_is_the_md5_digest_as_one_integer() {
        // Python's hashlib is the independent check, in
        // conformance-tests/tests/kingpin_compat.rs.
        let hash = kingpin_hash("x", &1);
        let hex = format!("{:x}", Md5::digest(b"decider_x1"));
        assert_eq!(format!("{hash:032x}"), hex);
    }

    #[test]
    fn decide_for_agrees_with_kingpin_at_whole_values() {
        let decider = Decider::from_values([("f".to_owned(), 37.0)]);
        for id in 0..2000 {
            assert_eq!(
                decider.decide_for("f", id),
                decider.is_hashed_id_in_experiment(id, "f")
            );
        }
    }

    /// The fraction of 100k ids `decide_for` lets in.
    fn share(decider: &Decider, name: &str) -> f64 {
        (0..100_000)
            .filter(|id| decider.decide_for(name, id))
            .count() as f64
            / 100_000.0
    }

    #[test]
    fn decide_for_at_20_percent_lets_in_20_percent_of_ids() {
        let decider = Decider::from_values([("rollout".to_owned(), 20.0)]);
        let share = share(&decider, "rollout");
        println!("decide_for at 20%: {:.3}% of 100k ids", share * 100.0);
        assert!((share - 0.20).abs() <= 0.02, "{share}");
    }

    #[test]
    fn decide_for_honours_fractional_values() {
        let decider = Decider::from_values([("canary".to_owned(), 0.5)]);
        let share = share(&decider, "canary");
        println!("decide_for at 0.5%: {:.3}% of 100k ids", share * 100.0);
        assert!((share - 0.005).abs() <= 0.001, "{share}");
    }

    #[test]
    fn two_flags_at_50_percent_overlap_on_a_quarter_of_ids() {
        let decider = Decider::from_values([("left".to_owned(), 50.0), ("right".to_owned(), 50.0)]);
        let both = (0..100_000)
            .filter(|id| decider.decide_for("left", id) && decider.decide_for("right", id))
            .count() as f64
            / 100_000.0;
        println!(
            "two flags at 50%: both on for {:.3}% of 100k ids",
            both * 100.0
        );
        // Independent flags: 25%. KingPin's `id % 100` gave 50%.
        assert!((both - 0.25).abs() <= 0.01, "{both}");
    }

    #[test]
    fn decide_honours_the_extremes() {
        let decider = Decider::from_values([("on".to_owned(), 100.0), ("off".to_owned(), 0.0)]);
        assert!((0..100).all(|_| decider.decide("on")));
        assert!((0..100).all(|_| !decider.decide("off")));
        assert!(decider.decide_or("unset", true));
        assert!(!decider.decide("unset"));
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let decider = Decider::from_values([("Flag".to_owned(), 50.0)]);
        assert_eq!(decider.value("FLAG"), Some(50.0));
    }

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
