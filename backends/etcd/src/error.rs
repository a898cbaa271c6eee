//! Mapping `etcd-client` errors onto kingpin's kinds.

use etcd_client::Error as EtcdError;
use kingpin_api::{Error, ErrorKind};
use tonic::Code;

/// Converts an etcd error during `what` into a kingpin error, keeping it as
/// the source.
pub(crate) fn from_etcd(err: EtcdError, what: &str) -> Error {
    let kind = match &err {
        EtcdError::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                ErrorKind::Unavailable
            }
            Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Unauthorized,
            // etcd reports a missing or refused identity as invalid arguments.
            Code::InvalidArgument if is_identity_refusal(status.message()) => {
                ErrorKind::Unauthorized
            }
            Code::NotFound if status.message().contains("lease") => ErrorKind::SessionExpired,
            Code::InvalidArgument | Code::ResourceExhausted
                if status.message().contains("too large") =>
            {
                ErrorKind::TooLarge
            }
            Code::InvalidArgument => ErrorKind::InvalidArgument,
            // A broken connection surfaces as an "unknown" status.
            Code::Unknown if is_connection_failure(status) => ErrorKind::Unavailable,
            _ => ErrorKind::Backend,
        },
        EtcdError::TransportError(_)
        | EtcdError::IoError(_)
        | EtcdError::WatchError(_)
        | EtcdError::LeaseKeepAliveError(_) => ErrorKind::Unavailable,
        EtcdError::InvalidArgs(_) | EtcdError::InvalidUri(_) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Backend,
    };
    let message = match kind {
        ErrorKind::Unavailable => format!("etcd unavailable during {what}"),
        ErrorKind::Unauthorized => format!("etcd refused access during {what}"),
        _ => format!("etcd failed during {what}"),
    };
    Error::new(kind, message).with_source(err)
}

/// Whether an etcd message says the client's identity was missing or
/// refused (`ErrGRPCUserEmpty`, `ErrGRPCAuthFailed`).
fn is_identity_refusal(message: &str) -> bool {
    message.contains("user name is empty") || message.contains("authentication failed")
}

/// Whether a status stands for a failed connection rather than a refusal by
/// the server: tonic reports those as `Unknown` with an I/O error inside.
fn is_connection_failure(status: &tonic::Status) -> bool {
    if status.message().contains("transport error") {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<std::io::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}
