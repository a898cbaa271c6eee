//! `S3BlobStore`: the BlobStore operations on one bucket and prefix.

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use kingpin_api::{Backoff, BlobKey, BlobMeta, BlobStore, Error, ErrorKind, Result};
use tokio::sync::OnceCell;

use crate::config::{ConditionalPut, S3Config};
use crate::error::from_sdk;

/// The first retry of a failed request waits up to this long (doubling).
const RETRY_INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// Backoff between attempts to read a body that was cut short.
const BODY_RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(20);
const BODY_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a GET failed: the request (retried by the SDK), or reading the body
/// of an answer (retried by [`S3BlobStore::get`]).
enum GetFailure {
    Request(Error),
    Body(aws_sdk_s3::primitives::ByteStreamError),
}

/// A [`BlobStore`] on an S3 bucket. See the crate docs.
#[derive(Debug)]
pub struct S3BlobStore {
    client: Client,
    config: S3Config,
    /// What `ConditionalPut::Auto` found the server to support.
    resolved_put: OnceCell<ConditionalPut>,
}

impl S3BlobStore {
    /// Builds the client. No request is made until the first call.
    /// Credentials come from [`S3Config::with_credentials`] or the chain of
    /// `kingpin-aws-credentials` (environment, profiles, web identity,
    /// container; instance metadata only when asked); the region from the
    /// URL, the environment or the profile, else `us-east-1`.
    pub async fn connect(config: S3Config) -> Result<Self> {
        let region = kingpin_aws_credentials::resolve_region(config.region.as_deref()).await;
        let credentials = match &config.credentials {
            Some((id, secret)) => SharedCredentialsProvider::new(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "kingpin-config",
            )),
            None => kingpin_aws_credentials::credential_chain(&region, config.instance_metadata),
        };
        // Region and credentials are given, so the loader consults neither
        // its own region chain nor its own credential chain, both of which
        // end at the instance metadata service.
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            .load()
            .await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            // The SDK waits up to 1 s before its first retry by default;
            // a config write or a monitor's fetch should not stall that long
            // on one 503, so start where object_store does.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(config.max_attempts)
                    .with_initial_backoff(RETRY_INITIAL_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Ok(S3BlobStore {
            client: Client::from_conf(builder.build()),
            config,
            resolved_put: OnceCell::new(),
        })
    }

    /// Creates the bucket if it does not exist (for development and tests).
    pub async fn ensure_bucket(&self) -> Result<()> {
        match self
            .client
            .create_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = from_sdk(e, "create bucket", &self.config);
                let owned = std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .is_some_and(|s| {
                        s.contains("BucketAlreadyOwnedByYou") || s.contains("BucketAlreadyExists")
                    });
                if owned
                    || self
                        .client
                        .head_bucket()
                        .bucket(&self.config.bucket)
                        .send()
                        .await
                        .is_ok()
                {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn object_key(&self, key: &BlobKey) -> String {
        if self.config.prefix.is_empty() {
            key.as_str().to_owned()
        } else {
            format!("{}/{}", self.config.prefix, key)
        }
    }

    fn location(&self) -> String {
        self.config.location()
    }

    async fn exists(&self, object: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(from_sdk(e, &format!("head {object}"), &self.config)),
        }
    }

    /// Puts with `If-None-Match: *`; `Ok(false)` if the object was there.
    async fn put_unless_present(&self, object: &str, data: Bytes) -> Result<bool> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(object)
            .if_none_match("*")
            .body(ByteStream::from(data))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = from_sdk(e, &format!("put {object}"), &self.config);
                match err.kind() {
                    ErrorKind::AlreadyExists => Ok(false),
                    _ => Err(err),
                }
            }
        }
    }

    /// How puts guard against overwrites. Unless the URL asked for
    /// `check-first`, the first put finds out whether the server honours
    /// `If-None-Match: *` by putting a scratch object twice: servers exist
    /// that accept the header and overwrite anyway, so the header is
    /// trusted only once this server was seen refusing the second put,
    /// even when `if-none-match` was asked for.
    async fn conditional_put(&self) -> Result<ConditionalPut> {
        if self.config.conditional_put == ConditionalPut::CheckFirst {
            return Ok(ConditionalPut::CheckFirst);
        }
        self.resolved_put
            .get_or_try_init(|| async {
                let probe = self.object_key(&BlobKey::parse(&format!(
                    ".kingpin-probe/{:016x}",
                    rand::random::<u64>()
                ))?);
                self.put_unless_present(&probe, Bytes::from_static(b"1"))
                    .await?;
                let honoured = !self
                    .put_unless_present(&probe, Bytes::from_static(b"2"))
                    .await?;
                let _ = self
                    .client
                    .delete_object()
                    .bucket(&self.config.bucket)
                    .key(&probe)
                    .send()
                    .await;
                if honoured {
                    Ok(ConditionalPut::IfNoneMatch)
                } else {
                    tracing::warn!(
                        location = %self.location(),
                        asked = ?self.config.conditional_put,
                        "the S3 server overwrote an object despite If-None-Match: *; \
                         checking that an object is absent before each put instead"
                    );
                    Ok(ConditionalPut::CheckFirst)
                }
            })
            .await
            .copied()
    }

    /// One GET, its body read in full.
    async fn get_once(
        &self,
        key: &BlobKey,
        object: &str,
    ) -> std::result::Result<Bytes, GetFailure> {
        let response = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(object)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("blob {key} does not exist in {}", self.location()),
                    )
                    .with_source(e)
                } else {
                    from_sdk(e, &format!("get {object}"), &self.config)
                }
            })
            .map_err(GetFailure::Request)?;
        let body = response.body.collect().await.map_err(GetFailure::Body)?;
        Ok(body.into_bytes())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_if_absent(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        let object = self.object_key(key);
        let created = match self.conditional_put().await? {
            ConditionalPut::CheckFirst => {
                if self.exists(&object).await? {
                    false
                } else {
                    self.client
                        .put_object()
                        .bucket(&self.config.bucket)
                        .key(&object)
                        .body(ByteStream::from(data))
                        .send()
                        .await
                        .map_err(|e| from_sdk(e, &format!("put {object}"), &self.config))?;
                    true
                }
            }
            _ => self.put_unless_present(&object, data).await?,
        };
        if created {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob {key} already exists in {}", self.location()),
            ))
        }
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        let object = self.object_key(key);
        // The SDK retries a request that fails; a body cut short after the
        // answer began is retried here, within the same number of attempts.
        let mut backoff = Backoff::new(BODY_RETRY_BASE, BODY_RETRY_CAP);
        let mut attempt = 1;
        loop {
            match self.get_once(key, &object).await {
                Ok(bytes) => return Ok(bytes),
                Err(GetFailure::Request(e)) => return Err(e),
                Err(GetFailure::Body(e)) if attempt < self.config.max_attempts => {
                    tracing::debug!(%key, attempt, error = %e, "retrying a get whose body was cut short");
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(GetFailure::Body(e)) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "reading {object} from {} failed part way ({attempt} attempts)",
                            self.location()
                        ),
                    )
                    .with_source(e))
                }
            }
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let object = self.object_key(key);
        match self
            .client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(&object)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.meta().code() == Some("NoSuchKey")) =>
            {
                Ok(())
            }
            Err(e) => Err(from_sdk(e, &format!("delete {object}"), &self.config)),
        }
    }

    async fn list(&self, prefix: Option<&BlobKey>) -> Result<Vec<BlobMeta>> {
        let root = if self.config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.config.prefix)
        };
        let list_prefix = match prefix {
            Some(p) => format!("{root}{p}"),
            None => root.clone(),
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.config.bucket)
            .prefix(&list_prefix)
            .into_paginator()
            .send();
        let mut metas = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| from_sdk(e, &format!("list {list_prefix}"), &self.config))?;
            for object in page.contents() {
                let Some(name) = object.key().and_then(|k| k.strip_prefix(&root)) else {
                    continue;
                };
                let Ok(key) = BlobKey::parse(name) else {
                    tracing::debug!(name, "skipping object whose name is not a valid blob key");
                    continue;
                };
                if prefix.is_none_or(|p| key.starts_with(p)) {
                    metas.push(BlobMeta {
                        key,
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        metas.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(metas)
    }
}
