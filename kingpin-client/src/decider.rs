//! The decider (design.md §5): named values in [0, 100] that switch code
//! paths and experiments at run time. [`Decider`] is one snapshot of the
//! values; [`DeciderReader`] keeps one up to date from the local decider
//! file.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest, Md5};
use rand::Rng;

use crate::error::{Error, Result};
use crate::file::ConfigFile;
use crate::managed::is_blank;
use crate::name::DEFAULT_CONFIG_DIR;

/// The config holding every decider value, and so the name of its local
/// file, as in KingPin.
pub const DECIDER_CONFIG: &str = "config.manageddata.admin.decider";

/// A snapshot of decider values, evaluated without I/O. Lookups never
/// fail: a decider that is not set counts as 0 (or the default given).
///
/// ```
/// use kingpin_client::Decider;
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
    ///
    /// # Errors
    ///
    /// [`Error::Content`] when `content` is anything else.
    pub fn from_json(content: &[u8]) -> Result<Self> {
        let values: BTreeMap<String, f64> = serde_json::from_slice(content).map_err(|e| {
            Error::content(format!(
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

/// The decider values of the local decider file
/// (`config.manageddata.admin.decider`, a JSON object of name to number),
/// reloaded when the file changes.
///
/// Decisions **never fail**: before the file has loaded, and while it is
/// missing or broken, they use the last good values (none at first, so
/// every decider counts as unset and gets its default). How loading goes is
/// in [`file`](Self::file).
///
/// ```
/// use kingpin_client::DeciderReader;
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.manageddata.admin.decider"), r#"{"new_feed": 100}"#)?;
/// let decider = DeciderReader::open_in(dir.path())?;
/// assert!(decider.decide_for("new_feed", 42));
/// assert!(!decider.decide("not_set"), "unset deciders are off");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DeciderReader {
    file: ConfigFile<Decider>,
}

impl DeciderReader {
    /// Reads the decider file at `path`, missing or not.
    ///
    /// # Errors
    ///
    /// Only [`Error::InvalidName`] and [`Error::Watch`]: a missing or
    /// broken file means no values (yet).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Ok(DeciderReader {
            file: ConfigFile::open_or(path, Decider::default(), parse_decider_file)?,
        })
    }

    /// Reads `config.manageddata.admin.decider` in the config directory
    /// `dir`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open(dir.as_ref().join(DECIDER_CONFIG))
    }

    /// Reads the decider file in [`DEFAULT_CONFIG_DIR`] (`/var/config`).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_default() -> Result<Self> {
        Self::open_in(DEFAULT_CONFIG_DIR)
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<Decider> {
        &self.file
    }

    /// The current values, to make several decisions from one snapshot.
    pub fn snapshot(&self) -> Arc<Decider> {
        self.file.snapshot()
    }

    /// See [`Decider::value`].
    pub fn value(&self, name: &str) -> Option<f64> {
        self.file.snapshot().value(name)
    }

    /// See [`Decider::decide`].
    pub fn decide(&self, name: &str) -> bool {
        self.file.snapshot().decide(name)
    }

    /// See [`Decider::decide_or`].
    pub fn decide_or(&self, name: &str, default: bool) -> bool {
        self.file.snapshot().decide_or(name, default)
    }

    /// See [`Decider::decide_for`].
    pub fn decide_for(&self, name: &str, id: impl Display) -> bool {
        self.file.snapshot().decide_for(name, id)
    }

    /// See [`Decider::is_hashed_id_in_experiment`].
    pub fn is_hashed_id_in_experiment(&self, id: impl Display, name: &str) -> bool {
        self.file.snapshot().is_hashed_id_in_experiment(id, name)
    }
}

/// The decider file's content; an empty file (KingPin's cleared data) has
/// no values.
fn parse_decider_file(content: &[u8]) -> Result<Decider> {
    if is_blank(content) {
        return Ok(Decider::default());
    }
    Decider::from_json(content)
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

    #[test]
    fn from_json_reads_the_decider_file_format() {
        let decider = Decider::from_json(br#"{"a": 12.5, "B": 100}"#).unwrap();
        assert_eq!(decider.value("a"), Some(12.5));
        assert_eq!(decider.value("b"), Some(100.0));
        for bad in [&b"[1]"[..], b"{\"a\": \"x\"}", b"not json"] {
            let err = Decider::from_json(bad).unwrap_err();
            assert!(matches!(err, Error::Content { .. }), "{err}");
        }
    }

    #[test]
    fn an_empty_decider_file_has_no_values() {
        assert_eq!(parse_decider_file(b" \n").unwrap(), Decider::default());
    }
}
