//! Mapping object_store errors onto kingpin's kinds.

use kingpin_api::{Error, ErrorKind};

/// Converts an object_store error about `what` (a key, or the store) into a
/// kingpin error, keeping it as the source. object_store's messages carry
/// paths and endpoints, never credentials.
pub(crate) fn from_object_store(err: object_store::Error, what: &str) -> Error {
    if let Some(region) = region_the_server_expects(&err) {
        return Error::invalid(format!(
            "the store refused {what}: the bucket is in region {region:?}, and requests were \
             signed for another one; set region={region} in the blob store URL"
        ))
        .with_source(err);
    }
    let (kind, message) = match &err {
        object_store::Error::NotFound { .. } => {
            (ErrorKind::NotFound, format!("blob {what} does not exist"))
        }
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => (
            ErrorKind::AlreadyExists,
            format!("blob {what} already exists"),
        ),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => (
            ErrorKind::Unauthorized,
            format!("access to {what} was refused"),
        ),
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => (
            ErrorKind::Unsupported,
            format!("the store cannot do this for {what}"),
        ),
        object_store::Error::InvalidPath { .. } => {
            (ErrorKind::InvalidArgument, format!("invalid path {what}"))
        }
        // A local directory this user may read but not write.
        object_store::Error::Generic { .. } if is_permission_denied(&err) => (
            ErrorKind::Unauthorized,
            format!("the operating system refused to write {what}: permission denied"),
        ),
        object_store::Error::Generic { .. } => (
            ErrorKind::Unavailable,
            format!("the store failed on {what}"),
        ),
        _ => (ErrorKind::Backend, format!("the store failed on {what}")),
    };
    Error::new(kind, message).with_source(err)
}

/// Whether an I/O error in the chain is a refused permission (a file or
/// directory the user may not write).
fn is_permission_denied(err: &object_store::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The region an S3 server names when a request was signed for another one
/// (`AuthorizationHeaderMalformed`: "… the region 'us-east-1' is wrong;
/// expecting 'eu-west-1'"), which object_store passes on only as text.
fn region_the_server_expects(err: &object_store::Error) -> Option<String> {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(&e.to_string());
        source = e.source();
    }
    if !text.contains("AuthorizationHeaderMalformed") {
        return None;
    }
    // The body is XML, quoted as it came: the apostrophes may be escaped.
    let text = text.replace("&apos;", "'");
    let (_, rest) = text.split_once("expecting '")?;
    rest.split_once('\'').map(|(region, _)| region.to_owned())
}
