//! Mapping `zookeeper-client` errors onto kingpin's kinds.

use kingpin_api::{Error, ErrorKind};
use zookeeper_client as zk;

/// Converts a ZooKeeper error about `path` into a kingpin error, keeping it
/// as the source.
pub(crate) fn from_zk(err: zk::Error, path: &str) -> Error {
    let (kind, message) = match &err {
        zk::Error::NoNode => return Error::not_found(path).with_source(err),
        zk::Error::NodeExists => return Error::already_exists(path).with_source(err),
        zk::Error::NotEmpty => return Error::not_empty(path).with_source(err),
        zk::Error::BadVersion => (
            ErrorKind::BadVersion,
            format!("node {path} is not at the expected version"),
        ),
        zk::Error::NoAuth | zk::Error::AuthFailed | zk::Error::InvalidAcl => (
            ErrorKind::Unauthorized,
            format!("ZooKeeper refused access to {path}"),
        ),
        zk::Error::SessionExpired => (
            ErrorKind::SessionExpired,
            format!("session expired during an operation on {path}"),
        ),
        // The client's own connection failures (an I/O error such as a
        // reset connection, a server that stopped answering) come as
        // `Custom`: the connection is gone, not the request refused.
        zk::Error::ConnectionLoss
        | zk::Error::Custom(_)
        | zk::Error::Timeout
        | zk::Error::NoHosts
        | zk::Error::Throttled
        | zk::Error::ClientClosed
        | zk::Error::SessionMoved
        | zk::Error::NotReadOnly => (
            ErrorKind::Unavailable,
            format!("ZooKeeper unavailable for {path}"),
        ),
        zk::Error::NoChildrenForEphemerals => (
            ErrorKind::InvalidArgument,
            format!("the parent of {path} is ephemeral and cannot have children"),
        ),
        zk::Error::BadArguments(_) => (
            ErrorKind::InvalidArgument,
            format!("invalid request for {path}"),
        ),
        zk::Error::MarshallingError => (
            ErrorKind::TooLarge,
            format!("ZooKeeper could not accept the request for {path}"),
        ),
        zk::Error::Unimplemented => (
            ErrorKind::Unsupported,
            format!("the ZooKeeper server does not support this operation on {path}"),
        ),
        _ => (ErrorKind::Backend, format!("ZooKeeper failed on {path}")),
    };
    Error::new(kind, message).with_source(err)
}
