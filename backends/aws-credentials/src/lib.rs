//! The one place where kingpin's AWS clients — `kingpin-s3` (aws-sdk-s3) and
//! `kingpin-object-store`'s `s3a://` (object_store) — find credentials and
//! a region, so that both follow the same chain and neither contacts an
//! address the user did not name.
//!
//! Credentials, first match wins (aws-config's providers):
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!    `AWS_SESSION_TOKEN`;
//! 2. the profile files (`~/.aws/credentials`, `~/.aws/config`,
//!    `AWS_PROFILE`), including what a profile names (SSO, a role to
//!    assume, a `credential_process`);
//! 3. web identity, when `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`
//!    are set (EKS);
//! 4. the container endpoint, when `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//!    or `…_FULL_URI` is set (ECS, EKS pod identity);
//! 5. the EC2 instance metadata service (169.254.169.254), **only when the
//!    URL says `instance_metadata=true`**.
//!
//! aws-config's default chain ends with the instance metadata service, and
//! object_store falls back to it whenever nothing else is configured: a
//! process with no credentials would send requests to a link-local address
//! nobody configured. Here that address is contacted only on request.
//!
//! The region is the URL's, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else the
//! profile's, else `us-east-1`; never the instance metadata service.
#![deny(missing_docs)]

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_config::Region;
pub use aws_credential_types::provider::SharedCredentialsProvider;

/// The region requests are signed for when nothing names one; S3-compatible
/// servers rarely care, SigV4 still needs one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The URL option that allows the instance metadata service.
pub const INSTANCE_METADATA_OPTION: &str = "instance_metadata";

/// The region: `explicit` (from the URL), else the environment, else the
/// profile, else [`DEFAULT_REGION`].
pub async fn resolve_region(explicit: Option<&str>) -> Region {
    if let Some(region) = explicit {
        return Region::new(region.to_owned());
    }
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .region()
        .await
        .unwrap_or_else(|| Region::from_static(DEFAULT_REGION))
}

/// The credential chain described in the crate docs, for `region` (which
/// web identity and profiles that assume a role need for STS).
/// `instance_metadata` adds the EC2 instance metadata service at its end.
pub fn credential_chain(region: &Region, instance_metadata: bool) -> SharedCredentialsProvider {
    let conf = ProviderConfig::default().with_region(Some(region.clone()));
    let chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else(
        "Profile",
        ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .build(),
    )
    .or_else(
        "WebIdentityToken",
        WebIdentityTokenCredentialsProvider::builder()
            .configure(&conf)
            .build(),
    )
    .or_else(
        "EcsContainer",
        aws_config::ecs::EcsCredentialsProvider::builder()
            .configure(&conf)
            .build(),
    );
    let chain = if instance_metadata {
        chain.or_else(
            "Ec2InstanceMetadata",
            ImdsCredentialsProvider::builder().configure(&conf).build(),
        )
    } else {
        chain
    };
    SharedCredentialsProvider::new(chain)
}

/// What to tell a user whose chain found nothing.
pub fn no_credentials_hint(instance_metadata: bool) -> &'static str {
    if instance_metadata {
        "no AWS credentials found in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
         the profile files, web identity, the container endpoint or the instance metadata service"
    } else {
        "no AWS credentials found in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
         the profile files, web identity or the container endpoint; to use an EC2 instance role, \
         add instance_metadata=true to the URL"
    }
}
