//! Credentials for object_store's clouds, from the environment and, for
//! S3, the same chain as `kingpin-s3` (`kingpin-aws-credentials`).
//!
//! object_store's builders fall back to the cloud's instance metadata
//! service (a link-local address) whenever nothing else is configured. A
//! kingpin process contacts only addresses its URL or environment names, so
//! that fallback is allowed only with `instance_metadata=true`; without it,
//! a store with no credentials is refused before any request, saying where
//! credentials may come from.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use kingpin_api::{Error, ErrorKind, Result};
use kingpin_aws_credentials::SharedCredentialsProvider;
use object_store::aws::AwsCredential;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::CredentialProvider;

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// object_store's S3 credential provider over kingpin's AWS chain, caching
/// each credential until shortly before it expires.
#[derive(Debug)]
pub(crate) struct AwsChain {
    chain: SharedCredentialsProvider,
    instance_metadata: bool,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl AwsChain {
    pub(crate) fn new(chain: SharedCredentialsProvider, instance_metadata: bool) -> Self {
        AwsChain {
            chain,
            instance_metadata,
            cached: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<AwsCredential>> {
        let cached = self.cached.lock().ok()?;
        let (credential, expiry) = cached.as_ref()?;
        let fresh = expiry.is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE_EXPIRY);
        fresh.then(|| credential.clone())
    }
}

#[async_trait]
impl CredentialProvider for AwsChain {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        use aws_credential_types::provider::ProvideCredentials;
        if let Some(credential) = self.cached() {
            return Ok(credential);
        }
        let found = self.chain.provide_credentials().await.map_err(|e| {
            object_store::Error::Unauthenticated {
                path: String::new(),
                source: format!(
                    "{} ({e})",
                    kingpin_aws_credentials::no_credentials_hint(self.instance_metadata)
                )
                .into(),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: found.access_key_id().to_owned(),
            secret_key: found.secret_access_key().to_owned(),
            token: found.session_token().map(str::to_owned),
        });
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((credential.clone(), found.expiry()));
        }
        Ok(credential)
    }
}

fn no_credentials(store: &str, hint: &str) -> Error {
    Error::new(
        ErrorKind::Unauthorized,
        format!("no credentials for {store}: {hint}"),
    )
}

/// Refuses a GCS store that would take its credentials from the metadata
/// server nobody named.
pub(crate) fn check_gcs(
    builder: &GoogleCloudStorageBuilder,
    instance_metadata: bool,
    store: &str,
) -> Result<()> {
    let configured = [
        GoogleConfigKey::ServiceAccount,
        GoogleConfigKey::ServiceAccountKey,
        GoogleConfigKey::ApplicationCredentials,
    ]
    .iter()
    .any(|key| builder.get_config_value(key).is_some());
    let skips_signing = builder
        .get_config_value(&GoogleConfigKey::SkipSignature)
        .is_some_and(|v| v == "true");
    // object_store reads gcloud's application default credentials here.
    let gcloud_default = std::env::var_os("HOME").is_some_and(|home| {
        std::path::Path::new(&home)
            .join(".config/gcloud/application_default_credentials.json")
            .exists()
    });
    if configured || skips_signing || gcloud_default || instance_metadata {
        Ok(())
    } else {
        Err(no_credentials(
            store,
            "set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT (a key file), \
             GOOGLE_SERVICE_ACCOUNT_KEY, or run `gcloud auth application-default login`; to \
             use the GCE metadata server, add instance_metadata=true to the URL",
        ))
    }
}

/// Refuses an Azure store that would take its credentials from the managed
/// identity endpoint nobody named.
pub(crate) fn check_azure(
    builder: &MicrosoftAzureBuilder,
    instance_metadata: bool,
    store: &str,
) -> Result<()> {
    let set = |key: AzureConfigKey| builder.get_config_value(&key).is_some();
    let on = |key: AzureConfigKey| builder.get_config_value(&key).is_some_and(|v| v == "true");
    let configured = set(AzureConfigKey::AccessKey)
        || set(AzureConfigKey::Token)
        || set(AzureConfigKey::SasKey)
        || set(AzureConfigKey::ClientSecret)
        || set(AzureConfigKey::FederatedTokenFile)
        // An endpoint or a credential type the environment names is the
        // user's choice.
        || set(AzureConfigKey::MsiEndpoint)
        || set(AzureConfigKey::CredentialType)
        || set(AzureConfigKey::FabricTokenServiceUrl)
        || on(AzureConfigKey::UseAzureCli)
        || on(AzureConfigKey::UseEmulator)
        || on(AzureConfigKey::SkipSignature);
    if configured || instance_metadata {
        Ok(())
    } else {
        Err(no_credentials(
            store,
            "set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, AZURE_STORAGE_TOKEN, or \
             AZURE_CLIENT_ID with AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE) and \
             AZURE_TENANT_ID; to use a managed identity from the instance metadata endpoint, \
             add instance_metadata=true to the URL",
        ))
    }
}
