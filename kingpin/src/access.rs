//! Least privilege on the coordinator a URL names: sets up and checks an
//! [`AccessPolicy`] (readers, registrars, writers; see
//! [`kingpin_api::access`]) in the backend's own terms.
//!
//! | backend | what a policy becomes | who runs setup |
//! |---|---|---|
//! | ZooKeeper | an ACL on every node, the policy at `/acl` for every process to follow | a writer of the policy (`KINGPIN_ZK_DIGEST`) |
//! | etcd | roles with key-range permissions granted to users, the policy at `/acl` | etcd's `root` (`KINGPIN_ETCD_USER`/`_PASSWORD`) |
//! | SQLite | nothing: the database file's permissions decide (see the README) | — |

use kingpin_api::access::{AccessPolicy, AccessReport};
use kingpin_api::{CoordinatorScheme, CoordinatorUrl, Error, ErrorKind, Result};
use kingpin_etcd::EtcdConfig;
use kingpin_zookeeper::ZooKeeperConfig;

pub use kingpin_zookeeper::digest_identity as zookeeper_digest_identity;

/// Sets `policy` up on the namespace `url` names, or with `dry_run`
/// reports what that would change.
///
/// Errors: `InvalidArgument` for a policy the backend cannot express (a
/// password where a ZooKeeper digest belongs, anonymous reads on etcd, no
/// writer, a runner that is not a writer); `Unauthorized` when the
/// credentials in the environment may not change access;
/// `Unsupported` for SQLite and `memory://`.
pub async fn apply_policy(url: &str, policy: &AccessPolicy, dry_run: bool) -> Result<AccessReport> {
    let url = CoordinatorUrl::parse(url)?;
    match url.scheme() {
        CoordinatorScheme::ZooKeeper => {
            kingpin_zookeeper::apply_policy(&ZooKeeperConfig::from_url(&url)?, policy, dry_run)
                .await
        }
        CoordinatorScheme::Etcd => {
            kingpin_etcd::roles::apply_policy(&EtcdConfig::from_url(&url)?, policy, dry_run).await
        }
        other => Err(no_access_control(other)),
    }
}

/// Reports where the namespace `url` names differs from `policy`, or from
/// the policy stored there when `policy` is `None`. Changes nothing.
pub async fn check_policy(url: &str, policy: Option<&AccessPolicy>) -> Result<AccessReport> {
    let url = CoordinatorUrl::parse(url)?;
    match url.scheme() {
        CoordinatorScheme::ZooKeeper => {
            kingpin_zookeeper::check_policy(&ZooKeeperConfig::from_url(&url)?, policy).await
        }
        CoordinatorScheme::Etcd => {
            kingpin_etcd::roles::check_policy(&EtcdConfig::from_url(&url)?, policy).await
        }
        other => Err(no_access_control(other)),
    }
}

/// The policy stored in the namespace `url` names, if any.
pub async fn stored_policy(url: &str) -> Result<Option<AccessPolicy>> {
    let url = CoordinatorUrl::parse(url)?;
    match url.scheme() {
        CoordinatorScheme::ZooKeeper => {
            kingpin_zookeeper::stored_policy(&ZooKeeperConfig::from_url(&url)?).await
        }
        CoordinatorScheme::Etcd => {
            kingpin_etcd::roles::stored_policy(&EtcdConfig::from_url(&url)?).await
        }
        other => Err(no_access_control(other)),
    }
}

/// Checks that the backend `url` names can express `policy`, without
/// connecting.
pub fn validate_policy(url: &str, policy: &AccessPolicy) -> Result<()> {
    let url = CoordinatorUrl::parse(url)?;
    match url.scheme() {
        CoordinatorScheme::ZooKeeper => kingpin_zookeeper::validate_policy(policy),
        CoordinatorScheme::Etcd => kingpin_etcd::roles::validate_policy(policy),
        other => Err(no_access_control(other)),
    }
}

fn no_access_control(scheme: CoordinatorScheme) -> Error {
    let why = match scheme {
        CoordinatorScheme::Sqlite => {
            "SQLite has no access control of its own: the database file's permissions decide \
             who reads and who writes (README: Securing a deployment)"
        }
        _ => "this coordinator has no access control",
    };
    Error::new(
        ErrorKind::Unsupported,
        format!("{}:// — {why}", scheme.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backends_without_access_control_say_so() {
        let policy = AccessPolicy::new(["digest:admin:x"]);
        for url in ["sqlite:///tmp/k.db", "memory://"] {
            let err = apply_policy(url, &policy, true).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        }
        let err = check_policy("sqlite://", None).await.unwrap_err();
        assert!(err.to_string().contains("file's permissions"), "{err}");
        let err = validate_policy(
            "etcd://h:2379/p",
            &AccessPolicy {
                anonymous: kingpin_api::access::AnonymousAccess::Read,
                ..AccessPolicy::new(["admin"])
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
