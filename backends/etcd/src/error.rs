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

/// How many times a request that never reached a server is sent: the
/// client spreads requests over every endpoint, and a member that is down
/// refuses connections, so the next attempt usually goes to a live one.
const UNSENT_ATTEMPTS: u32 = 8;

/// Runs `call` again while it fails without having reached any server (up
/// to [`UNSENT_ATTEMPTS`] in all), so that one dead member of a cluster
/// does not fail a share of every client's requests. Safe for writes too:
/// nothing was sent, so nothing can have been applied.
pub(crate) async fn resend_unsent<T, Fut>(
    mut call: impl FnMut() -> Fut,
) -> std::result::Result<T, EtcdError>
where
    Fut: std::future::Future<Output = std::result::Result<T, EtcdError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < UNSENT_ATTEMPTS && never_sent(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether `err` proves the request never left: the connection to the
/// endpoint it was given to could not be made.
fn never_sent(err: &EtcdError) -> bool {
    let EtcdError::GRpcStatus(status) = err else {
        return false;
    };
    if status.code() != Code::Unavailable {
        return false;
    }
    if status.message().contains("tcp connect error") {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
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
        assert!(!never_sent(&EtcdError::GRpcStatus(refused.clone())));
        assert_eq!(
            from_etcd(EtcdError::GRpcStatus(refused), "put").kind(),
            ErrorKind::Backend
        );
    }

    #[test]
    fn only_connections_never_made_are_resent() {
        let connect = tonic::Status::unavailable("tcp connect error");
        assert!(never_sent(&EtcdError::GRpcStatus(connect)));
        for status in [
            tonic::Status::unavailable("etcdserver: leader changed"),
            tonic::Status::unavailable("etcdserver: request timed out"),
            tonic::Status::unknown("transport error"),
            tonic::Status::deadline_exceeded("tcp connect error"),
        ] {
            assert!(
                !never_sent(&EtcdError::GRpcStatus(status.clone())),
                "{status:?}"
            );
        }
    }
}
