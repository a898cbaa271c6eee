//! Store URLs: `file:///dir`, `memory://`, `s3://bucket/prefix` (and
//! `s3a://`), `gs://bucket/prefix`, `az://container/prefix`, with
//! `?key=value` options.
//!
//! Options are object_store's configuration keys for the scheme (e.g.
//! `endpoint`, `region`, `allow_http`; any letter case), plus kingpin's own:
//! `conditional_put=auto|if-none-match|check-first`, `max_attempts=N` and
//! `instance_metadata=true|false`. Credentials come from the environment
//! (`AWS_*` and profiles, `GOOGLE_*`, `AZURE_*`), never from the URL: an
//! option that would carry one is refused, whatever its case.

use std::fmt;

use kingpin_api::{Error, Result};
use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use url::Url;

/// How `put_if_absent` keeps an existing object from being overwritten, on
/// the stores that can be remote (`s3`, `gs`, `az`). Local directories and
/// memory refuse an existing key by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalPut {
    /// The first put finds out whether the server honours the store's
    /// conditional create (`If-None-Match: *` on S3), by putting a scratch
    /// object twice; if it does not, puts look first, with a warning.
    Auto,
    /// The conditional create, verified as [`ConditionalPut::Auto`] does:
    /// a server seen overwriting gets [`ConditionalPut::CheckFirst`].
    IfNoneMatch,
    /// Look first, then put. A racing writer of the same key can still win;
    /// kingpin's keys carry their content's hash, so such a race writes the
    /// same bytes.
    CheckFirst,
}

/// Which object_store backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    File,
    Memory,
    S3,
    Gcs,
    Azure,
}

/// A parsed store URL. `Display` shows it without options.
#[derive(Clone)]
pub struct ObjectStoreUrl {
    pub(crate) url: Url,
    pub(crate) kind: StoreKind,
    /// object_store options, keys lower-cased; none carries a credential.
    pub(crate) options: Vec<(String, String)>,
    pub(crate) conditional_put: ConditionalPut,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) instance_metadata: bool,
}

impl ObjectStoreUrl {
    /// Parses a store URL and splits off its options.
    pub fn parse(text: &str) -> Result<Self> {
        let mut url = Url::parse(text)
            .map_err(|e| Error::invalid(format!("blob store URL is invalid: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                "credentials are not accepted in blob store URLs, because URLs end up in logs; use the AWS_*, GOOGLE_* or AZURE_* environment",
            ));
        }
        let kind = match url.scheme() {
            "file" => StoreKind::File,
            "memory" => StoreKind::Memory,
            "s3" | "s3a" => StoreKind::S3,
            "gs" => StoreKind::Gcs,
            "az" | "azure" | "abfs" | "abfss" => StoreKind::Azure,
            other => {
                return Err(Error::invalid(format!(
                    "unknown blob store scheme {other:?}; expected file, memory, s3, s3a, gs or az"
                )))
            }
        };
        let mut parsed = ObjectStoreUrl {
            url: url.clone(),
            kind,
            options: Vec::new(),
            conditional_put: ConditionalPut::Auto,
            max_attempts: None,
            instance_metadata: false,
        };
        for (key, value) in url.query_pairs() {
            parsed.add_option(&key, &value)?;
        }
        url.set_query(None);
        parsed.url = url;
        Ok(parsed)
    }

    fn add_option(&mut self, key: &str, value: &str) -> Result<()> {
        let scheme = self.url.scheme().to_owned();
        if kingpin_api::is_credential_option(key) || self.names_a_credential(key) {
            return Err(Error::invalid(format!(
                "option {key:?} would put a credential in a {scheme}:// URL, where logs and \
                 process lists show it; use the environment (AWS_*, GOOGLE_*, AZURE_*) or a \
                 profile instead"
            )));
        }
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "conditional_put" if self.is_remote() => {
                self.conditional_put = match value {
                    "auto" => ConditionalPut::Auto,
                    "if-none-match" => ConditionalPut::IfNoneMatch,
                    "check-first" => ConditionalPut::CheckFirst,
                    other => {
                        return Err(Error::invalid(format!(
                            "conditional_put={other:?}; expected auto, if-none-match or check-first"
                        )))
                    }
                }
            }
            "max_attempts" if self.is_remote() => {
                self.max_attempts =
                    Some(value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        Error::invalid("max_attempts must be a count of at least 1")
                    })?);
            }
            kingpin_aws_credentials::INSTANCE_METADATA_OPTION if self.is_remote() => {
                self.instance_metadata = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => {
                        return Err(Error::invalid(format!(
                            "instance_metadata={other:?} is not true or false"
                        )))
                    }
                }
            }
            _ if self.store_knows(&key) => self.options.push((key, value.to_owned())),
            _ => {
                return Err(Error::invalid(format!(
                    "unknown option {key:?} for a {scheme}:// URL"
                )))
            }
        }
        Ok(())
    }

    /// Whether the store may be on another machine (and so may ignore a
    /// conditional create).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.kind, StoreKind::S3 | StoreKind::Gcs | StoreKind::Azure)
    }

    fn store_knows(&self, key: &str) -> bool {
        match self.kind {
            StoreKind::File | StoreKind::Memory => false,
            StoreKind::S3 => key.parse::<AmazonS3ConfigKey>().is_ok(),
            StoreKind::Gcs => key.parse::<GoogleConfigKey>().is_ok(),
            StoreKind::Azure => key.parse::<AzureConfigKey>().is_ok(),
        }
    }

    /// Whether `key` is one of the store's credential settings under a name
    /// the generic check does not catch (object_store accepts aliases).
    fn names_a_credential(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        match self.kind {
            StoreKind::File | StoreKind::Memory => false,
            StoreKind::S3 => matches!(
                key.parse(),
                Ok(AmazonS3ConfigKey::AccessKeyId
                    | AmazonS3ConfigKey::SecretAccessKey
                    | AmazonS3ConfigKey::Token)
            ),
            StoreKind::Gcs => matches!(
                key.parse(),
                Ok(GoogleConfigKey::ServiceAccount
                    | GoogleConfigKey::ServiceAccountKey
                    | GoogleConfigKey::ApplicationCredentials)
            ),
            StoreKind::Azure => matches!(
                key.parse(),
                Ok(AzureConfigKey::AccessKey
                    | AzureConfigKey::ClientSecret
                    | AzureConfigKey::SasKey
                    | AzureConfigKey::Token
                    | AzureConfigKey::FederatedTokenFile)
            ),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }
}

impl fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}

impl fmt::Debug for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ObjectStoreUrl")
            .field("url", &self.url.as_str())
            .field("options", &keys)
            .field("conditional_put", &self.conditional_put)
            .field("instance_metadata", &self.instance_metadata)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kingpin_api::ErrorKind;

    #[test]
    fn splits_options() {
        let url = ObjectStoreUrl::parse(
            "s3a://bucket/pre?Endpoint=http://127.0.0.1:9000&allow_http=true&conditional_put=check-first&max_attempts=2",
        )
        .unwrap();
        assert_eq!(url.to_string(), "s3a://bucket/pre");
        assert_eq!(url.options[0].0, "endpoint", "keys are lower-cased");
        assert_eq!(url.options.len(), 2);
        assert_eq!(url.conditional_put, ConditionalPut::CheckFirst);
        assert_eq!(url.max_attempts, Some(2));
        for bad in [
            "s3://key:secret@bucket/x",
            "ftp://h/x",
            "not a url",
            "s3://b/x?bogus=1",
            "file:///tmp/x?endpoint=http://h",
            "memory://?conditional_put=auto",
        ] {
            let err = ObjectStoreUrl::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(!err.to_string().contains("secret@"), "{err}");
        }
    }

    /// Every scheme refuses every credential option object_store knows, in
    /// any letter case, without echoing the value.
    #[test]
    fn refuses_credential_options_in_any_case_for_every_scheme() {
        let cases: [(&str, &[&str]); 5] = [
            (
                "s3://b/p",
                &[
                    "aws_secret_access_key",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID",
                    "access_key_id",
                    "Aws_Session_Token",
                    "TOKEN",
                    "aws_token",
                ],
            ),
            (
                "s3a://b/p",
                &[
                    "AWS_SECRET_ACCESS_KEY",
                    "secret_access_key",
                    "aws_access_key_id",
                ],
            ),
            (
                "gs://b/p",
                &[
                    "GOOGLE_SERVICE_ACCOUNT_KEY",
                    "service_account_key",
                    "google_service_account",
                    "SERVICE_ACCOUNT_PATH",
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    "google_bearer_token",
                ],
            ),
            (
                "az://c/p",
                &[
                    "AZURE_STORAGE_ACCOUNT_KEY",
                    "access_key",
                    "Master_Key",
                    "azure_storage_sas_token",
                    "SAS_KEY",
                    "azure_client_secret",
                    "BEARER_TOKEN",
                    "azure_storage_token",
                    "token",
                ],
            ),
            (
                "file:///tmp/kp",
                &["secret", "AWS_SECRET_ACCESS_KEY", "Password"],
            ),
        ];
        for (base, options) in cases {
            for option in options {
                let err = ObjectStoreUrl::parse(&format!("{base}?{option}=hunter2")).unwrap_err();
                let text = err.to_string();
                assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{base} {option}");
                assert!(text.contains("credential"), "{base} {option}: {text}");
                assert!(!text.contains("hunter2"), "{text}");
            }
        }
    }
}
