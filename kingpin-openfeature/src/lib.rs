//! An [OpenFeature](https://openfeature.dev) provider over the files the
//! kingpin monitor keeps on each host, so applications use the decider and
//! an environment's view through the standard flag API.
//!
//! **Decider flags** (`config.manageddata.admin.decider`, a percentage per
//! flag):
//!
//! - boolean: 0 is off and 100 is on (reason `STATIC`); in between, the
//!   evaluation context's targeting key decides through KingPin's hashed
//!   bucket, the one `kingpin_client::Decider::decide_for` uses, so every
//!   language's client puts an id in the same bucket (reason `SPLIT`).
//!   Without a targeting key: the error `TARGETING_KEY_MISSING`, or a
//!   random draw, as [`ProviderOptions::without_targeting_key`] says;
//! - integer: the percentage (a fractional one is a `TYPE_MISMATCH`; the
//!   float resolution gives it);
//! - float: the percentage.
//!
//! **Typed flags from an environment's view** (the merged JSON object the
//! monitor writes for a service): a top-level key's boolean, number,
//! string or object. The decider is asked first, the view second.
//!
//! A flag in neither is `FLAG_NOT_FOUND`, so the caller's default applies;
//! a file the provider has not loaded yet is `PROVIDER_NOT_READY`; a file
//! older than [`ProviderOptions::max_age`] makes the provider's status
//! `STALE` (its values are still served). Each resolution carries flag
//! metadata: `source` (`decider` or `environment`), `percentage` for
//! decider flags, `age_seconds`, the file's age, and `version`, the config
//! version of the value, from the stamp the monitor keeps beside the file
//! (absent for a file without a stamp for its content, e.g. written by
//! hand; see [`kingpin_client::VersionStamp`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kingpin_openfeature::{KingpinProvider, ProviderOptions};
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let provider = KingpinProvider::new(ProviderOptions {
//!     environment_file: Some("/var/config/environment.api".into()),
//!     ..ProviderOptions::default()
//! })?;
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(provider).await;
//! let client = api.create_client();
//! let user = EvaluationContext::default().with_targeting_key("user-42");
//! let new_feed = client
//!     .get_bool_value("new_feed", Some(&user), None)
//!     .await
//!     .unwrap_or(false);
//! # let _ = new_feed; Ok(()) }
//! ```
#![deny(missing_docs)]

mod provider;

pub use provider::{KingpinProvider, ProviderOptions, WithoutTargetingKey, PROVIDER_NAME};
