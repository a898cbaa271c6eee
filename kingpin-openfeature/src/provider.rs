//! [`KingpinProvider`]: the OpenFeature `FeatureProvider` over the decider
//! file and an environment's view file.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use kingpin_client::{Decider, DeciderReader, EnvironmentReader, DECIDER_CONFIG};
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationError, EvaluationErrorCode, EvaluationReason, EvaluationResult,
    FlagMetadata, StructValue, Value,
};

/// The provider's name in its metadata.
pub const PROVIDER_NAME: &str = "kingpin";

/// What a boolean decider flag strictly between 0 and 100 does when the
/// evaluation context has no targeting key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WithoutTargetingKey {
    /// The error `TARGETING_KEY_MISSING`: the caller's default applies.
    #[default]
    Error,
    /// A random draw, true with probability percentage/100 (reason
    /// `SPLIT`), as `kingpin_client::Decider::decide` does.
    RandomDraw,
}

/// Which files the provider reads, and how it judges them.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The decider file; `None`: no decider flags.
    pub decider_file: Option<PathBuf>,
    /// An environment's view file (`/var/config/environment.<service>`);
    /// `None`: no typed flags.
    pub environment_file: Option<PathBuf>,
    /// A file older than this (by its modification time: when the monitor
    /// last replaced it) makes the provider's status `STALE`; `None`:
    /// never.
    pub max_age: Option<Duration>,
    /// Boolean decider flags in a split, without a targeting key.
    pub without_targeting_key: WithoutTargetingKey,
}

impl Default for ProviderOptions {
    /// The decider in `/var/config`, no environment, no age limit, an
    /// error without a targeting key.
    fn default() -> Self {
        ProviderOptions {
            decider_file: Some(Path::new(kingpin_client::DEFAULT_CONFIG_DIR).join(DECIDER_CONFIG)),
            environment_file: None,
            max_age: None,
            without_targeting_key: WithoutTargetingKey::Error,
        }
    }
}

/// The OpenFeature provider. Files are read and followed by
/// `kingpin_client` (lock-free snapshots, reloaded on change); a file that
/// does not exist yet is waited for, and the provider is not ready until
/// every configured file has been loaded once.
pub struct KingpinProvider {
    decider: Option<DeciderReader>,
    environment: Option<EnvironmentReader>,
    options: ProviderOptions,
    metadata: ProviderMetadata,
}

impl std::fmt::Debug for KingpinProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KingpinProvider")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KingpinProvider {
    /// Opens the files `options` names, present or not.
    ///
    /// # Errors
    ///
    /// As `kingpin_client::ConfigFile::open_or`: a path that cannot be a
    /// config file, or a directory that cannot be watched.
    pub fn new(options: ProviderOptions) -> kingpin_client::Result<Self> {
        let decider = options
            .decider_file
            .as_ref()
            .map(|path| DeciderReader::open(path.clone()))
            .transpose()?;
        let environment = options
            .environment_file
            .as_ref()
            .map(|path| EnvironmentReader::open_or_empty(path.clone()))
            .transpose()?;
        Ok(KingpinProvider {
            decider,
            environment,
            options,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        })
    }

    /// The decider's snapshot, `None` without a decider file; not ready
    /// until it has been loaded.
    fn decider(&self) -> EvaluationResult<Option<(std::sync::Arc<Decider>, FileFacts)>> {
        let Some(reader) = &self.decider else {
            return Ok(None);
        };
        if reader.file().status().last_loaded.is_none() {
            return Err(not_ready(reader.file().path()));
        }
        let (decider, version) = reader.file().versioned_snapshot();
        Ok(Some((
            decider,
            FileFacts::of(reader.file().path(), version),
        )))
    }

    /// The view's value at `key`, `None` without a view file or key; not
    /// ready until the view has been loaded.
    fn view_value(&self, key: &str) -> EvaluationResult<Option<(serde_json::Value, FileFacts)>> {
        let Some(reader) = &self.environment else {
            return Ok(None);
        };
        if reader.file().status().last_loaded.is_none() {
            return Err(not_ready(reader.file().path()));
        }
        let (view, version) = reader.file().versioned_snapshot();
        Ok(view
            .value(key)
            .map(|value| (value.clone(), FileFacts::of(reader.file().path(), version))))
    }

    /// A decider flag's percentage and the metadata that goes with it.
    fn percentage(&self, flag: &str) -> EvaluationResult<Option<(f64, FlagMetadata)>> {
        let Some((decider, facts)) = self.decider()? else {
            return Ok(None);
        };
        Ok(decider.value(flag).map(|percentage| {
            let metadata = facts.add_to(
                FlagMetadata::default()
                    .with_value("source", "decider")
                    .with_value("percentage", percentage),
            );
            (percentage, metadata)
        }))
    }

    /// A view value, converted by `convert`, with its metadata; a value of
    /// another type is `TYPE_MISMATCH`.
    fn typed<T>(
        &self,
        flag: &str,
        expected: &str,
        convert: impl FnOnce(&serde_json::Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let Some((value, facts)) = self.view_value(flag)? else {
            return Err(not_found(flag));
        };
        let Some(converted) = convert(&value) else {
            return Err(EvaluationError::builder()
                .code(EvaluationErrorCode::TypeMismatch)
                .message(format!(
                    "flag {flag} is not {expected} in the environment's view: {value}"
                ))
                .build());
        };
        Ok(ResolutionDetails::builder()
            .value(converted)
            .reason(EvaluationReason::Static)
            .flag_metadata(
                facts.add_to(FlagMetadata::default().with_value("source", "environment")),
            )
            .build())
    }

    /// A boolean from the decider's percentage.
    fn decide(
        &self,
        flag: &str,
        percentage: f64,
        context: &EvaluationContext,
    ) -> EvaluationResult<(bool, EvaluationReason)> {
        if percentage <= 0.0 {
            return Ok((false, EvaluationReason::Static));
        }
        if percentage >= 100.0 {
            return Ok((true, EvaluationReason::Static));
        }
        let decider = Decider::from_values([(flag.to_owned(), percentage)]);
        match (&context.targeting_key, self.options.without_targeting_key) {
            (Some(key), _) => Ok((decider.decide_for(flag, key), EvaluationReason::Split)),
            (None, WithoutTargetingKey::RandomDraw) => {
                Ok((decider.decide(flag), EvaluationReason::Split))
            }
            (None, WithoutTargetingKey::Error) => Err(EvaluationError::builder()
                .code(EvaluationErrorCode::TargetingKeyMissing)
                .message(format!(
                    "flag {flag} is at {percentage}%: a targeting key decides who is in"
                ))
                .build()),
        }
    }
}

#[async_trait]
impl FeatureProvider for KingpinProvider {
    fn status(&self) -> ProviderStatus {
        let files = self
            .decider
            .as_ref()
            .map(|r| {
                r.file()
                    .status()
                    .last_loaded
                    .is_some()
                    .then(|| r.file().path())
            })
            .into_iter()
            .chain(self.environment.as_ref().map(|r| {
                r.file()
                    .status()
                    .last_loaded
                    .is_some()
                    .then(|| r.file().path())
            }));
        let mut stale = false;
        for loaded in files {
            let Some(path) = loaded else {
                return ProviderStatus::NotReady;
            };
            if let Some(max_age) = self.options.max_age {
                // A file gone since it was loaded is as stale as can be.
                stale |= file_age(path).is_none_or(|age| age > max_age);
            }
        }
        if stale {
            ProviderStatus::STALE
        } else {
            ProviderStatus::Ready
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        if let Some((percentage, metadata)) = self.percentage(flag)? {
            let (value, reason) = self.decide(flag, percentage, context)?;
            return Ok(ResolutionDetails::builder()
                .value(value)
                .variant(if value { "on" } else { "off" })
                .reason(reason)
                .flag_metadata(metadata)
                .build());
        }
        self.typed(flag, "a boolean", serde_json::Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        if let Some((percentage, metadata)) = self.percentage(flag)? {
            if percentage.fract() != 0.0 {
                return Err(EvaluationError::builder()
                    .code(EvaluationErrorCode::TypeMismatch)
                    .message(format!(
                        "flag {flag} is at {percentage}%, not a whole number: resolve it as a float"
                    ))
                    .build());
            }
            return Ok(ResolutionDetails::builder()
                .value(percentage as i64)
                .reason(EvaluationReason::Static)
                .flag_metadata(metadata)
                .build());
        }
        self.typed(flag, "an integer", serde_json::Value::as_i64)
    }

    async fn resolve_float_value(
        &self,
        flag: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        if let Some((percentage, metadata)) = self.percentage(flag)? {
            return Ok(ResolutionDetails::builder()
                .value(percentage)
                .reason(EvaluationReason::Static)
                .flag_metadata(metadata)
                .build());
        }
        self.typed(flag, "a number", serde_json::Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.typed(flag, "a string", |v| v.as_str().map(str::to_owned))
    }

    async fn resolve_struct_value(
        &self,
        flag: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.typed(flag, "an object", |v| match Value::try_from(v) {
            Ok(Value::Struct(object)) => Some(object),
            _ => None,
        })
    }
}

fn not_ready(path: &Path) -> EvaluationError {
    EvaluationError::builder()
        .code(EvaluationErrorCode::ProviderNotReady)
        .message(format!("{} has not been loaded yet", path.display()))
        .build()
}

fn not_found(flag: &str) -> EvaluationError {
    EvaluationError::builder()
        .code(EvaluationErrorCode::FlagNotFound)
        .message(format!("no flag {flag}"))
        .build()
}

/// How long ago the monitor last replaced the file; `None` when that
/// cannot be told (gone, or a clock before the file).
fn file_age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    SystemTime::now().duration_since(modified).ok()
}

/// What a resolution's metadata tells about the file it came from.
struct FileFacts {
    age: Option<Duration>,
    /// The config version of the snapshot, when its stamp names it.
    version: Option<u64>,
}

impl FileFacts {
    fn of(path: &Path, version: Option<u64>) -> Self {
        FileFacts {
            age: file_age(path),
            version,
        }
    }

    /// `metadata` with `age_seconds` and `version`, where known.
    fn add_to(self, mut metadata: FlagMetadata) -> FlagMetadata {
        if let Some(age) = self.age {
            metadata = metadata.with_value("age_seconds", age.as_secs_f64());
        }
        // Versions count writes of one config: far below i64::MAX.
        if let Some(version) = self.version.and_then(|v| i64::try_from(v).ok()) {
            metadata = metadata.with_value("version", version);
        }
        metadata
    }
}
