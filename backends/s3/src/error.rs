//! Mapping aws-sdk-s3 errors onto kingpin's kinds.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use kingpin_api::{Error, ErrorKind};

/// Converts an SDK error during `what` at `location` (endpoint/bucket, never
/// credentials) into a kingpin error, keeping it as the source.
pub(crate) fn from_sdk<E, R>(err: SdkError<E, R>, what: &str, location: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
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
