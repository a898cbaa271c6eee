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
            // The server sheds load ("too many requests"): try again.
            Code::ResourceExhausted => ErrorKind::Unavailable,
            // A broken connection surfaces as an "unknown" or "internal"
            // status (h2 errors, a reset in the middle of a call).
            Code::Unknown | Code::Internal if is_connection_failure(status) => {
                ErrorKind::Unavailable
            }
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
    let message = status.message().to_ascii_lowercase();
    if [
        "transport error",
        "h2 protocol error",
        "connection",
        "broken pipe",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_and_elections_are_retryable() {
        for status in [
            tonic::Status::unavailable("etcdserver: leader changed"),
            tonic::Status::unavailable("etcdserver: request timed out"),
            tonic::Status::deadline_exceeded("context deadline exceeded"),
            tonic::Status::unknown("transport error"),
            tonic::Status::internal("h2 protocol error: error reading a body from connection"),
            tonic::Status::unknown("error reading a body from connection: connection reset"),
            tonic::Status::resource_exhausted("etcdserver: too many requests"),
        ] {
            let err = from_etcd(EtcdError::GRpcStatus(status.clone()), "put");
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{status:?}");
            assert!(err.is_retryable());
        }
        let large = tonic::Status::resource_exhausted("etcdserver: request is too large");
        assert_eq!(
            from_etcd(EtcdError::GRpcStatus(large), "put").kind(),
            ErrorKind::TooLarge
        );
        let refused = tonic::Status::internal("etcdserver: some refusal");
        assert_eq!(
            from_etcd(EtcdError::GRpcStatus(refused), "put").kind(),
            ErrorKind::Backend
        );
    }
}
