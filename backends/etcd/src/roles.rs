//! An access policy in etcd's terms: one role per kingpin role and
//! namespace, with key-range permissions, granted to the policy's users.
//!
//! | role | permissions (under the namespace prefix `P`) |
//! |---|---|
//! | `kingpin-reader@P` | read `P/`; read-write the keys of `/status` and its descendants |
//! | `kingpin-registrar@P` | read `P/`; read-write the keys of `/discovery` and its descendants |
//! | `kingpin-writer@P` | read-write `P/` |
//!
//! A subtree's keys are one range per depth (see [`KeyLayout::subtree`]),
//! granted down to [`MANAGED_DEPTH`]. etcd grants read or read-write on
//! keys, so it cannot tell "create children" from "write": registrars may
//! also change member data under `/discovery`, readers status data under
//! `/status`. With auth enabled, etcd serves no anonymous client.

use std::collections::BTreeSet;

use etcd_client::{Client, Permission, PermissionType, RoleRevokePermissionOptions};
use kingpin_api::access::{
    AccessFinding, AccessPolicy, AccessReport, AnonymousAccess, FindingOutcome, Role,
    DISCOVERY_ROOT, POLICY_PATH, STATUS_ROOT,
};
use kingpin_api::{Coordinator, CreateMode, Error, ErrorKind, NodePath, Result};

use crate::backend::EtcdCoordinator;
use crate::config::EtcdConfig;
use crate::error::from_etcd;
use crate::keys::{KeyLayout, KeySpan};

/// How deep below `/discovery` and `/status` the registrar and reader
/// roles reach (node depth, `/discovery` being 1): serverset members are
/// at depth 4 (`/discovery/SERVICE/ENV/member_N`).
pub const MANAGED_DEPTH: usize = 16;

/// The etcd role of `role` for the namespace under `prefix`, e.g.
/// `kingpin-reader@/kingpin`.
pub fn role_name(prefix: &str, role: Role) -> String {
    let prefix = if prefix.is_empty() { "/" } else { prefix };
    format!("kingpin-{role}@{prefix}")
}

/// Checks that `policy` fits etcd: identities are user names, and there is
/// no anonymous access to give.
pub fn validate_policy(policy: &AccessPolicy) -> Result<()> {
    policy.validate()?;
    if policy.anonymous != AnonymousAccess::None {
        return Err(Error::invalid(
            "etcd with auth enabled serves no client without identity: remove \
             `anonymous = \"read\"` from the policy for an etcd namespace",
        ));
    }
    for role in Role::ALL {
        for user in policy.identities(role) {
            if user.chars().any(char::is_whitespace) {
                return Err(Error::invalid(format!(
                    "{role} identity {user:?} is not an etcd user name"
                )));
            }
        }
    }
    Ok(())
}

/// One permission of a role: read or read-write on `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    write: bool,
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl Grant {
    fn new(write: bool, span: &KeySpan) -> Self {
        let (key, range_end) = span.range();
        Grant {
            write,
            key,
            range_end,
        }
    }

    fn of(permission: &Permission) -> Self {
        Grant {
            write: permission.get_type() != PermissionType::Read as i32,
            key: permission.key().to_vec(),
            range_end: permission.range_end().to_vec(),
        }
    }

    fn permission(&self) -> Permission {
        let permission = if self.write {
            Permission::read_write(self.key.clone())
        } else {
            Permission::read(self.key.clone())
        };
        permission.with_range_end(self.range_end.clone())
    }
}

fn describe(grants: &BTreeSet<Grant>) -> String {
    grants
        .iter()
        .map(|g| {
            let key = String::from_utf8_lossy(&g.key);
            let access = if g.write { "readwrite" } else { "read" };
            if g.range_end.is_empty() {
                format!("{access} {key}")
            } else {
                format!(
                    "{access} [{key}, {})",
                    String::from_utf8_lossy(&g.range_end)
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The permissions `role` gets in the namespace `layout` describes.
fn grants(layout: &KeyLayout, role: Role) -> Result<BTreeSet<Grant>> {
    let everything = KeySpan::Prefix(layout.namespace_prefix());
    let managed = match role {
        Role::Writer => return Ok(BTreeSet::from([Grant::new(true, &everything)])),
        Role::Reader => STATUS_ROOT,
        Role::Registrar => DISCOVERY_ROOT,
    };
    let mut grants = BTreeSet::from([Grant::new(false, &everything)]);
    for span in layout.subtree(&NodePath::parse(managed)?, MANAGED_DEPTH) {
        grants.insert(Grant::new(true, &span));
    }
    Ok(grants)
}

fn is_not_found(err: &etcd_client::Error) -> bool {
    matches!(err, etcd_client::Error::GRpcStatus(status) if status.message().contains("not found"))
}

/// Sets `policy` up on the namespace `config` names: the three roles with
/// their permissions, granted to the policy's users (and revoked from
/// users the policy no longer names), the policy stored at
/// [`POLICY_PATH`], and `/discovery` and `/status` created. With
/// `dry_run`, changes nothing and reports what it would change.
///
/// Runs as etcd's `root` (only root manages users and roles). Users must
/// exist (`etcdctl user add NAME`, or `--no-password` for certificate
/// users): a missing one is reported as failed. A server without auth
/// enabled is reported too: the roles take effect only with
/// `etcdctl auth enable`.
pub async fn apply_policy(
    config: &EtcdConfig,
    policy: &AccessPolicy,
    dry_run: bool,
) -> Result<AccessReport> {
    validate_policy(policy)?;
    let coordinator = EtcdCoordinator::connect(config.clone()).await?;
    let mut report = AccessReport::default();
    reconcile(&coordinator, policy, !dry_run, &mut report).await?;
    store_policy(&coordinator, policy, !dry_run, &mut report).await?;
    coordinator.close().await?;
    Ok(report)
}

/// Reports where the roles, users and nodes differ from `policy`, or,
/// without `policy`, from the policy stored in the namespace. Changes
/// nothing; runs as `root`.
///
/// Errors: `NotFound` when no policy is given and none is stored.
pub async fn check_policy(
    config: &EtcdConfig,
    policy: Option<&AccessPolicy>,
) -> Result<AccessReport> {
    let coordinator = EtcdCoordinator::connect(config.clone()).await?;
    let policy = match policy {
        Some(policy) => policy.clone(),
        None => read_policy(&coordinator).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "the namespace has no access policy at {POLICY_PATH}; give one, or run \
                     `kingpin acl setup`"
                ),
            )
        })?,
    };
    validate_policy(&policy)?;
    let mut report = AccessReport::default();
    reconcile(&coordinator, &policy, false, &mut report).await?;
    store_policy(&coordinator, &policy, false, &mut report).await?;
    coordinator.close().await?;
    Ok(report)
}

/// The policy stored in the namespace, if any.
pub async fn stored_policy(config: &EtcdConfig) -> Result<Option<AccessPolicy>> {
    let coordinator = EtcdCoordinator::connect(config.clone()).await?;
    let policy = read_policy(&coordinator).await;
    coordinator.close().await?;
    policy
}

async fn read_policy(coordinator: &EtcdCoordinator) -> Result<Option<AccessPolicy>> {
    match coordinator.get(&NodePath::parse(POLICY_PATH)?).await {
        Ok(node) => serde_json::from_slice(&node.data).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("the access policy at {POLICY_PATH} is not valid JSON for a policy"),
            )
            .with_source(e)
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn outcome(fix: bool, result: impl FnOnce() -> Option<String>) -> FindingOutcome {
    if !fix {
        return FindingOutcome::Mismatch;
    }
    match result() {
        None => FindingOutcome::Fixed,
        Some(why) => FindingOutcome::Failed(why),
    }
}

/// The policy node, `/discovery` and `/status`.
async fn store_policy(
    coordinator: &EtcdCoordinator,
    policy: &AccessPolicy,
    fix: bool,
    report: &mut AccessReport,
) -> Result<()> {
    let stored = read_policy(coordinator).await?;
    report.checked += 1;
    if stored.as_ref() != Some(policy) {
        let mut result = None;
        if fix {
            let data = serde_json::to_vec_pretty(policy).map_err(|e| {
                Error::new(ErrorKind::Backend, "cannot encode the policy").with_source(e)
            })?;
            let path = NodePath::parse(POLICY_PATH)?;
            let written = match stored {
                Some(_) => coordinator.set(&path, &data, None).await.map(drop),
                None => coordinator
                    .create(&path, &data, CreateMode::Persistent)
                    .await
                    .map(drop),
            };
            result = written.err().map(|e| e.to_string());
        }
        report.findings.push(AccessFinding {
            target: POLICY_PATH.to_owned(),
            expected: "the given policy".to_owned(),
            actual: match stored {
                Some(_) => "a different policy".to_owned(),
                None => "no policy".to_owned(),
            },
            outcome: outcome(fix, || result),
        });
    }
    for parent in [DISCOVERY_ROOT, STATUS_ROOT] {
        let path = NodePath::parse(parent)?;
        report.checked += 1;
        if coordinator.exists(&path).await?.is_some() {
            continue;
        }
        let mut result = None;
        if fix {
            result = match coordinator.create(&path, &[], CreateMode::Persistent).await {
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => None,
                Err(e) => Some(e.to_string()),
            };
        }
        report.findings.push(AccessFinding {
            target: parent.to_owned(),
            expected: "present".to_owned(),
            actual: "missing".to_owned(),
            outcome: outcome(fix, || result),
        });
    }
    Ok(())
}

/// The roles and their users, and whether auth is on at all.
async fn reconcile(
    coordinator: &EtcdCoordinator,
    policy: &AccessPolicy,
    fix: bool,
    report: &mut AccessReport,
) -> Result<()> {
    let shared = &coordinator.shared;
    let mut client = shared.client.clone();
    if !auth_enabled(&shared.config).await {
        report.findings.push(AccessFinding {
            target: "etcd auth".to_owned(),
            expected: "enabled".to_owned(),
            actual: "disabled: every client may do everything; run `etcdctl auth enable`"
                .to_owned(),
            outcome: FindingOutcome::Mismatch,
        });
    }
    let users = client
        .user_list()
        .await
        .map_err(|e| from_etcd(e, "listing users (setup runs as etcd's root)"))?
        .users()
        .to_vec();
    for role in Role::ALL {
        let name = role_name(&shared.config.prefix, role);
        reconcile_role(&mut client, &shared.layout, &name, role, fix, report).await?;
        let wanted: BTreeSet<&str> = policy.identities(role).iter().map(String::as_str).collect();
        for user in &wanted {
            report.checked += 1;
            let roles = match client.user_get(*user).await {
                Ok(found) => found.roles().to_vec(),
                Err(e) if is_not_found(&e) => {
                    report.findings.push(AccessFinding {
                        target: format!("user {user}"),
                        expected: format!("an etcd user with role {name}"),
                        actual: "no such user".to_owned(),
                        outcome: FindingOutcome::Failed(format!(
                            "create it first: etcdctl user add {user}"
                        )),
                    });
                    continue;
                }
                Err(e) => return Err(from_etcd(e, "reading a user")),
            };
            if roles.contains(&name) {
                continue;
            }
            let mut result = None;
            if fix {
                result = client
                    .user_grant_role(*user, name.as_str())
                    .await
                    .err()
                    .map(|e| from_etcd(e, "granting a role").to_string());
            }
            report.findings.push(AccessFinding {
                target: format!("user {user}"),
                expected: format!("role {name}"),
                actual: format!("roles {}", roles.join(", ")),
                outcome: outcome(fix, || result),
            });
        }
        for user in users.iter().filter(|u| !wanted.contains(u.as_str())) {
            let roles = match client.user_get(user.as_str()).await {
                Ok(found) => found.roles().to_vec(),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(from_etcd(e, "reading a user")),
            };
            if !roles.contains(&name) {
                continue;
            }
            let mut result = None;
            if fix {
                result = client
                    .user_revoke_role(user.as_str(), name.as_str())
                    .await
                    .err()
                    .map(|e| from_etcd(e, "revoking a role").to_string());
            }
            report.findings.push(AccessFinding {
                target: format!("user {user}"),
                expected: format!("not role {name} (not a {role} in the policy)"),
                actual: format!("role {name}"),
                outcome: outcome(fix, || result),
            });
        }
    }
    Ok(())
}

async fn reconcile_role(
    client: &mut Client,
    layout: &KeyLayout,
    name: &str,
    role: Role,
    fix: bool,
    report: &mut AccessReport,
) -> Result<()> {
    report.checked += 1;
    let expected = grants(layout, role)?;
    let actual = match client.role_get(name).await {
        Ok(found) => Some(found.permissions().iter().map(Grant::of).collect()),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(from_etcd(e, "reading a role")),
    };
    if actual.as_ref() == Some(&expected) {
        return Ok(());
    }
    let mut result = None;
    if fix {
        result = fix_role(client, name, actual.as_ref(), &expected)
            .await
            .err()
            .map(|e| e.to_string());
    }
    report.findings.push(AccessFinding {
        target: format!("role {name}"),
        expected: describe(&expected),
        actual: match &actual {
            Some(grants) => describe(grants),
            None => "no such role".to_owned(),
        },
        outcome: outcome(fix, || result),
    });
    Ok(())
}

async fn fix_role(
    client: &mut Client,
    name: &str,
    actual: Option<&BTreeSet<Grant>>,
    expected: &BTreeSet<Grant>,
) -> Result<()> {
    let empty = BTreeSet::new();
    let actual = match actual {
        Some(grants) => grants,
        None => {
            client
                .role_add(name)
                .await
                .map_err(|e| from_etcd(e, "adding a role"))?;
            &empty
        }
    };
    for extra in actual.difference(expected) {
        let mut options = RoleRevokePermissionOptions::new();
        if !extra.range_end.is_empty() {
            options = options.with_range_end(extra.range_end.clone());
        }
        client
            .role_revoke_permission(name, extra.key.clone(), Some(options))
            .await
            .map_err(|e| from_etcd(e, "revoking a permission"))?;
    }
    for missing in expected.difference(actual) {
        client
            .role_grant_permission(name, missing.permission())
            .await
            .map_err(|e| from_etcd(e, "granting a permission"))?;
    }
    Ok(())
}

/// Whether the server refuses a client without credentials (or, over TLS,
/// without a client certificate).
async fn auth_enabled(config: &EtcdConfig) -> bool {
    let mut options =
        etcd_client::ConnectOptions::new().with_connect_timeout(config.connect_timeout);
    if let Some(tls) = &config.tls {
        let server_only = crate::config::Tls {
            ca: tls.ca.clone(),
            identity: None,
        };
        options = options.with_tls(crate::session::tls_options(&server_only));
    }
    let Ok(mut anonymous) = Client::connect(config.endpoints.clone(), Some(options)).await else {
        return true;
    };
    anonymous
        .get(KeyLayout::new(&config.prefix).namespace_prefix(), None)
        .await
        .is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_named_by_namespace_and_grant_their_subtree() {
        assert_eq!(
            role_name("/kingpin", Role::Reader),
            "kingpin-reader@/kingpin"
        );
        assert_eq!(role_name("", Role::Writer), "kingpin-writer@/");
        let layout = KeyLayout::new("/kp");
        let writer = grants(&layout, Role::Writer).unwrap();
        assert_eq!(describe(&writer), "readwrite [/kp/, /kp0)");
        let registrar = describe(&grants(&layout, Role::Registrar).unwrap());
        assert!(registrar.contains("read [/kp/, /kp0)"), "{registrar}");
        assert!(
            registrar.contains("readwrite [/kp/n/0004/discovery/, /kp/n/0004/discovery0)"),
            "{registrar}"
        );
        assert!(!registrar.contains("status"), "{registrar}");
        let reader = describe(&grants(&layout, Role::Reader).unwrap());
        assert!(reader.contains("readwrite /kp/n/0001/status"), "{reader}");
    }

    #[test]
    fn policies_must_fit_etcd() {
        let mut policy = AccessPolicy::new(["admin"]);
        assert!(validate_policy(&policy).is_ok());
        policy.anonymous = AnonymousAccess::Read;
        assert!(validate_policy(&policy).is_err());
        let mut policy = AccessPolicy::new(["admin"]);
        policy.readers.push("two words".into());
        assert!(validate_policy(&policy).is_err());
    }
}
