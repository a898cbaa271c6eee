//! Mapping aws-sdk-s3 errors onto kingpin's kinds.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use kingpin_api::{Error, ErrorKind};

use crate::config::S3Config;

/// Converts an SDK error during `what` on the store `config` describes into
/// a kingpin error naming its location (endpoint/bucket, never
/// credentials), keeping the SDK's error as the source.
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, what: &str, config: &S3Config) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let location = &config.location();
    if let Some(expected) = region_the_server_expects(&err) {
        return Error::invalid(format!(
            "S3 at {location} refused {what}: the bucket is in region {expected:?}, and requests \
             were signed for another one; set region={expected} in the blob store URL"
        ))
        .with_source(err);
    }
    if is_missing_credentials(&err) {
        return Error::new(
            ErrorKind::Unauthorized,
            format!(
                "cannot sign {what} for S3 at {location}: {}",
                kingpin_aws_credentials::no_credentials_hint(config.instance_metadata)
            ),
        )
        .with_source(err);
    }
    let (kind, message) = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
            ErrorKind::Unavailable,
            format!("cannot reach S3 at {location} during {what}"),
        ),
        SdkError::ResponseError(_) => (
            ErrorKind::Unavailable,
            format!("bad response from S3 at {location} during {what}"),
        ),
        SdkError::ServiceError(_) => match err.code() {
            Some("NoSuchKey" | "NotFound") => (
                ErrorKind::NotFound,
                format!("{what}: no such object in {location}"),
            ),
            Some("NoSuchBucket") => (
                ErrorKind::NotFound,
                format!("{what}: the bucket of {location} does not exist"),
            ),
            Some("PreconditionFailed" | "ConditionalRequestConflict") => (
                ErrorKind::AlreadyExists,
                format!("{what}: the object already exists in {location}"),
            ),
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken",
            ) => (
                ErrorKind::Unauthorized,
                format!("S3 at {location} refused the credentials during {what}"),
            ),
            Some("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout") => (
                ErrorKind::Unavailable,
                format!("S3 at {location} is overloaded or failing during {what}"),
            ),
            // A HEAD answer has no body, so no code: its status says it.
            _ if is_transient_status(&err) => (
                ErrorKind::Unavailable,
                format!("S3 at {location} is overloaded or failing during {what}"),
            ),
            _ => (
                ErrorKind::Backend,
                format!("S3 at {location} failed during {what}"),
            ),
        },
        _ => (
            ErrorKind::Backend,
            format!("S3 request for {what} at {location} could not be made"),
        ),
    };
    // Keep the SDK's error as the source: its text carries codes and request
    // ids, never the secret key.
    Error::new(kind, message).with_source(err)
}

/// 5xx and 429 answers: the server is failing or throttling, try again.
fn is_transient_status<E>(err: &SdkError<E, HttpResponse>) -> bool {
    err.raw_response().is_some_and(|raw| {
        let status = raw.status().as_u16();
        status >= 500 || status == 429
    })
}

/// The region a server names when a request was signed for another one:
/// AWS answers `AuthorizationHeaderMalformed` ("… the region 'us-east-1' is
/// wrong; expecting 'eu-west-1'"), or a redirect, with the bucket's region in
/// `x-amz-bucket-region`.
fn region_the_server_expects<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> Option<String> {
    let SdkError::ServiceError(service) = err else {
        return None;
    };
    let code = service.err().code();
    let status = service.raw().status().as_u16();
    let about_region = code == Some("AuthorizationHeaderMalformed")
        || code == Some("PermanentRedirect")
        || status == 301;
    if !about_region {
        return None;
    }
    if let Some(region) = service.raw().headers().get("x-amz-bucket-region") {
        return Some(region.to_owned());
    }
    let message = service.err().message()?;
    let (_, rest) = message.split_once("expecting '")?;
    rest.split_once('\'').map(|(region, _)| region.to_owned())
}

/// Whether the SDK could not sign a request because no credentials were
/// found (it fails before sending anything).
fn is_missing_credentials<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: std::error::Error + 'static,
{
    if !matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
    ) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        source = e.source();
    }
    false
}
