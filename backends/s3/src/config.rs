//! Settings, from an `s3://bucket/prefix?…` URL and the environment.

use std::fmt;
use std::time::Duration;

use kingpin_api::{Error, Result};
use url::Url;

/// How `put_if_absent` keeps an existing object from being overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalPut {
    /// Ask the server once whether it honours `If-None-Match: *`; use it if
    /// so, else fall back to [`ConditionalPut::CheckFirst`] with a warning.
    Auto,
    /// Send `If-None-Match: *` (S3 since 2024, MinIO, …). Verified like
    /// [`ConditionalPut::Auto`]: a server seen overwriting despite the
    /// header gets [`ConditionalPut::CheckFirst`] instead, with a warning,
    /// since trusting it would let a put replace an existing object.
    IfNoneMatch,
    /// Look first, then put: for servers that ignore the header. A racing
    /// writer of the same key can still win; kingpin's keys carry the
    /// content's hash, so such a race writes the same bytes.
    CheckFirst,
}

/// How to reach a bucket.
#[derive(Clone)]
pub struct S3Config {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) path_style: bool,
    pub(crate) conditional_put: ConditionalPut,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) max_attempts: u32,
    pub(crate) operation_timeout: Duration,
    pub(crate) instance_metadata: bool,
}

impl S3Config {
    /// A bucket, with every key under `prefix` (may be empty). Credentials
    /// come from the standard AWS chain (environment, profile, instance
    /// role) unless [`with_credentials`](Self::with_credentials) is used.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            endpoint: None,
            region: None,
            path_style: false,
            conditional_put: ConditionalPut::Auto,
            credentials: None,
            max_attempts: 4,
            operation_timeout: Duration::from_secs(60),
            instance_metadata: false,
        }
    }

    /// Reads `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true&conditional_put=auto&max_attempts=4&instance_metadata=false`.
    /// Credentials never come from the URL: an option that would carry one,
    /// in any letter case, is refused.
    pub fn from_url(text: &str) -> Result<Self> {
        let url =
            Url::parse(text).map_err(|e| Error::invalid(format!("S3 URL is invalid: {e}")))?;
        if url.scheme() != "s3" {
            return Err(Error::invalid(format!(
                "{} is not an s3:// URL",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                "credentials are not accepted in S3 URLs, because URLs end up in logs; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile",
            ));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::invalid("S3 URL names no bucket"))?;
        let mut config = S3Config::new(bucket, url.path());
        for (key, value) in url.query_pairs() {
            if kingpin_api::is_credential_option(&key) {
                return Err(Error::invalid(format!(
                    "option {key:?} would put a credential in a URL, where logs and process \
                     lists show it; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
                )));
            }
            match key.as_ref() {
                "endpoint" => config.endpoint = Some(value.into_owned()),
                "region" => config.region = Some(value.into_owned()),
                "path_style" => config.path_style = parse_bool(&key, &value)?,
                "conditional_put" => {
                    config.conditional_put = match value.as_ref() {
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
                kingpin_aws_credentials::INSTANCE_METADATA_OPTION => {
                    config.instance_metadata = parse_bool(&key, &value)?
                }
                "max_attempts" => {
                    config.max_attempts =
                        value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| Error::invalid("max_attempts must be a count of at least 1"))?
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option {other:?} for an s3:// URL; known options: endpoint, region, path_style, conditional_put, max_attempts, instance_metadata"
                    )))
                }
            }
        }
        Ok(config)
    }

    /// Talks to `endpoint` (an S3-compatible server) instead of AWS.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The bucket's region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Path-style addressing (`endpoint/bucket/key`), which MinIO and most
    /// S3-compatible servers need.
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    /// Explicit static credentials instead of the AWS chain.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// How `put_if_absent` guards against overwrites.
    pub fn with_conditional_put(mut self, mode: ConditionalPut) -> Self {
        self.conditional_put = mode;
        self
    }

    /// Attempts per call, retrying throttling, 5xx and network errors with
    /// exponential backoff (the SDK's standard retry strategy).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Lets the credential chain end at the EC2 instance metadata service
    /// (an instance role). Off by default: the service's address is
    /// link-local, and a process must not send requests to an address that
    /// nobody configured.
    pub fn with_instance_metadata(mut self, allowed: bool) -> Self {
        self.instance_metadata = allowed;
        self
    }

    /// Bound on one call, retries included.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// `endpoint/bucket/prefix` without credentials, for messages.
    pub(crate) fn location(&self) -> String {
        let endpoint = self.endpoint.as_deref().unwrap_or("s3");
        if self.prefix.is_empty() {
            format!("{endpoint}/{}", self.bucket)
        } else {
            format!("{endpoint}/{}/{}", self.bucket, self.prefix)
        }
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::invalid(format!(
            "{key}={value:?} is not true or false"
        ))),
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("location", &self.location())
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("conditional_put", &self.conditional_put)
            .field("instance_metadata", &self.instance_metadata)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "<redacted>")),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_url_options_and_hides_secrets() {
        let config = S3Config::from_url("s3://cfg/kp/v1/?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&conditional_put=check-first")
            .unwrap()
            .with_credentials("AKIA", "topsecret");
        assert_eq!(
            (config.bucket.as_str(), config.prefix.as_str()),
            ("cfg", "kp/v1")
        );
        assert!(config.path_style);
        assert_eq!(config.conditional_put, ConditionalPut::CheckFirst);
        assert_eq!(config.location(), "http://127.0.0.1:9000/cfg/kp/v1");
        assert!(!format!("{config:?}").contains("topsecret"));
        for bad in [
            "s3://ak:sk@b/p",
            "s3:///p",
            "s3://b/p?path_style=maybe",
            "s3://b/p?secret=x",
            "gs://b/p",
        ] {
            let err = S3Config::from_url(bad).unwrap_err();
            assert!(!err.to_string().contains("sk@"), "{err}");
        }
    }

    #[test]
    fn refuses_credential_options_in_any_letter_case() {
        for option in [
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "Secret_Access_Key",
            "aws_session_token",
            "SESSION_TOKEN",
            "token",
        ] {
            let err = S3Config::from_url(&format!("s3://b/p?{option}=hunter2")).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.kind(), kingpin_api::ErrorKind::InvalidArgument);
            assert!(text.contains("credential"), "{option}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let config = S3Config::from_url("s3://b/p?instance_metadata=true").unwrap();
        assert!(config.instance_metadata);
    }
}
