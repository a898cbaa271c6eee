//! Mapping object_store errors onto kingpin's kinds.

use kingpin_api::{Error, ErrorKind};

/// Converts an object_store error about `what` (a key, or the store) into a
/// kingpin error, keeping it as the source. object_store's messages carry
/// paths and endpoints, never credentials.
pub(crate) fn from_object_store(err: object_store::Error, what: &str) -> Error {
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
        object_store::Error::Generic { .. } => (
            ErrorKind::Unavailable,
            format!("the store failed on {what}"),
        ),
        _ => (ErrorKind::Backend, format!("the store failed on {what}")),
    };
    Error::new(kind, message).with_source(err)
}
