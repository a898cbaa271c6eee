//! Setting up and checking an access policy on a namespace: the policy
//! node, the parents registrars and readers create under, and every
//! node's ACL.

use std::collections::VecDeque;

use kingpin_api::access::{
    AccessFinding, AccessPolicy, AccessReport, FindingOutcome, DISCOVERY_ROOT, POLICY_PATH,
    STATUS_ROOT,
};
use kingpin_api::{Error, ErrorKind, NodePath, Result};
use zookeeper_client as zk;

use crate::acl::{read_policy, validate_policy, CanonicalAcl, PolicyAcls};
use crate::config::{ZooKeeperConfig, CERT_ENV, DIGEST_ENV};
use crate::error::from_zk;
use crate::session::open_session;

/// Sets `policy` up on the namespace `config` names (creating it if
/// missing): stores the policy at [`POLICY_PATH`] for every process to
/// follow, creates [`DISCOVERY_ROOT`] and [`STATUS_ROOT`] so registrars
/// and readers never need to create at the root, and gives every existing
/// node the ACL the policy asks for. With `dry_run`, changes nothing and
/// reports what it would change.
///
/// Runs as a writer of the policy (`KINGPIN_ZK_DIGEST`), so it cannot lock
/// itself out. Nodes it may not change (created by another identity with
/// an ACL that leaves it out) are reported as failed, and the rest is
/// still done.
pub async fn apply_policy(
    config: &ZooKeeperConfig,
    policy: &AccessPolicy,
    dry_run: bool,
) -> Result<AccessReport> {
    validate_policy(policy)?;
    if !config.has_identity() {
        return Err(Error::invalid(format!(
            "setting up an access policy needs a writer's identity: set {DIGEST_ENV} to the \
             user:password of one of the policy's writers (or {CERT_ENV} to a writer's \
             certificate)"
        )));
    }
    let own_digest = config.digest_identity().map(|id| format!("digest:{id}"));
    let digest_is_writer = own_digest
        .as_ref()
        .is_some_and(|d| policy.writers.contains(d));
    // A digest is checked before connecting; a certificate's identity is
    // the server's to say.
    if !digest_is_writer && config.tls.as_ref().is_none_or(|t| t.identity.is_none()) {
        return Err(locked_out(own_digest.as_deref()));
    }
    let acls = PolicyAcls::new(policy)?;
    let client = open_session(config).await?;
    if !digest_is_writer && !certificate_is_writer(&client, policy).await? {
        return Err(locked_out(own_digest.as_deref()));
    }
    let mut report = AccessReport::default();
    let stored = read_policy(&client).await?;
    report.checked += 1;
    if stored.as_ref() != Some(policy) {
        report.findings.push(AccessFinding {
            target: POLICY_PATH.to_owned(),
            expected: "this policy".to_owned(),
            actual: match stored {
                Some(_) => "a different policy".to_owned(),
                None => "no policy".to_owned(),
            },
            outcome: if dry_run {
                FindingOutcome::Mismatch
            } else {
                store_policy(&client, &acls, policy).await?;
                FindingOutcome::Fixed
            },
        });
    }
    create_parents(&client, &acls, !dry_run, &mut report).await?;
    walk(&client, &acls, !dry_run, &mut report).await?;
    Ok(report)
}

fn locked_out(own_digest: Option<&str>) -> Error {
    let user = own_digest
        .and_then(|d| d.split(':').nth(1))
        .map(|user| format!(" (digest user {user:?})"))
        .unwrap_or_default();
    Error::invalid(format!(
        "the identity this process authenticates as{user} is not among the policy's writers: \
         applying the policy would lock it out"
    ))
}

/// Whether the server knows this session by an identity other than a
/// digest (an `x509:` subject, say) that the policy names as a writer.
async fn certificate_is_writer(client: &zk::Client, policy: &AccessPolicy) -> Result<bool> {
    let users = match client.list_auth_users().await {
        Ok(users) => users,
        // Servers before 3.7 cannot say who a session is.
        Err(zk::Error::Unimplemented) => return Ok(false),
        Err(e) => return Err(from_zk(e, "(whoami)")),
    };
    Ok(users.iter().any(|user| {
        user.scheme() != "digest"
            && policy
                .writers
                .contains(&format!("{}:{}", user.scheme(), user.user()))
    }))
}

/// Reports every node of the namespace whose ACL differs from what
/// `policy` asks for, or, without `policy`, from the policy stored in the
/// namespace. Changes nothing.
///
/// Errors: `NotFound` when no policy is given and none is stored.
pub async fn check_policy(
    config: &ZooKeeperConfig,
    policy: Option<&AccessPolicy>,
) -> Result<AccessReport> {
    let client = open_session(config).await?;
    let stored = read_policy(&client).await?;
    let mut report = AccessReport::default();
    report.checked += 1;
    let policy = match (policy, &stored) {
        (Some(given), stored) => {
            if stored.as_ref() != Some(given) {
                report.findings.push(AccessFinding {
                    target: POLICY_PATH.to_owned(),
                    expected: "the given policy".to_owned(),
                    actual: match stored {
                        Some(_) => "a different policy".to_owned(),
                        None => "no policy".to_owned(),
                    },
                    outcome: FindingOutcome::Mismatch,
                });
            }
            given.clone()
        }
        (None, Some(stored)) => stored.clone(),
        (None, None) => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "the namespace has no access policy at {POLICY_PATH}; give one, or run \
                     `kingpin acl setup`"
                ),
            ))
        }
    };
    let acls = PolicyAcls::new(&policy)?;
    create_parents(&client, &acls, false, &mut report).await?;
    walk(&client, &acls, false, &mut report).await?;
    Ok(report)
}

/// The policy currently stored in the namespace, if any.
pub async fn stored_policy(config: &ZooKeeperConfig) -> Result<Option<AccessPolicy>> {
    let client = open_session(config).await?;
    read_policy(&client).await
}

/// Creates (with `fix`) or reports the parents registrars and readers
/// create under, which they may not create themselves.
async fn create_parents(
    client: &zk::Client,
    acls: &PolicyAcls,
    fix: bool,
    report: &mut AccessReport,
) -> Result<()> {
    for parent in [DISCOVERY_ROOT, STATUS_ROOT] {
        report.checked += 1;
        let exists = client
            .check_stat(parent)
            .await
            .map_err(|e| from_zk(e, parent))?;
        if exists.is_some() {
            continue;
        }
        let path = NodePath::parse(parent)?;
        let outcome = if !fix {
            FindingOutcome::Mismatch
        } else {
            let options =
                zk::CreateMode::Persistent.with_acls(zk::Acls::new(acls.for_node(&path, false)));
            match client.create(parent, &[], &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => FindingOutcome::Fixed,
                Err(e) => FindingOutcome::Failed(from_zk(e, parent).to_string()),
            }
        };
        report.findings.push(AccessFinding {
            target: parent.to_owned(),
            expected: CanonicalAcl::of(acls.for_node(&path, false)).to_string(),
            actual: "missing".to_owned(),
            outcome,
        });
    }
    Ok(())
}

async fn store_policy(client: &zk::Client, acls: &PolicyAcls, policy: &AccessPolicy) -> Result<()> {
    let data = serde_json::to_vec_pretty(policy)
        .map_err(|e| Error::new(ErrorKind::Backend, "cannot encode the policy").with_source(e))?;
    let path = NodePath::parse(POLICY_PATH)?;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acls.for_node(&path, false)));
    match client.create(POLICY_PATH, &data, &options).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NodeExists) => client
            .set_data(POLICY_PATH, &data, None)
            .await
            .map(drop)
            .map_err(|e| from_zk(e, POLICY_PATH)),
        Err(e) => Err(from_zk(e, POLICY_PATH)),
    }
}

/// Visits every node of the namespace, breadth first, comparing its ACL
/// with the policy's and, with `fix`, setting it.
async fn walk(
    client: &zk::Client,
    acls: &PolicyAcls,
    fix: bool,
    report: &mut AccessReport,
) -> Result<()> {
    let mut queue = VecDeque::from([NodePath::root()]);
    while let Some(path) = queue.pop_front() {
        let (actual, stat) = match client.get_acl(path.as_str()).await {
            Ok(found) => found,
            // Deleted meanwhile (an ephemeral member leaving): nothing to do.
            Err(zk::Error::NoNode) => continue,
            Err(e) => {
                report.checked += 1;
                report.findings.push(AccessFinding {
                    target: path.to_string(),
                    expected: "an ACL this identity may read".to_owned(),
                    actual: "unknown".to_owned(),
                    outcome: FindingOutcome::Failed(from_zk(e, path.as_str()).to_string()),
                });
                continue;
            }
        };
        report.checked += 1;
        let expected = acls.for_node(&path, stat.ephemeral_owner != 0);
        let actual_acl = CanonicalAcl::of(&actual);
        let (matches, expected_text) = actual_acl.compare(&CanonicalAcl::of(expected));
        if !matches {
            let outcome = if !fix {
                FindingOutcome::Mismatch
            } else {
                match client.set_acl(path.as_str(), expected, None).await {
                    Ok(_) => FindingOutcome::Fixed,
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => FindingOutcome::Failed(from_zk(e, path.as_str()).to_string()),
                }
            };
            report.findings.push(AccessFinding {
                target: path.to_string(),
                expected: expected_text.to_string(),
                actual: actual_acl.to_string(),
                outcome,
            });
        }
        let children = match client.list_children(path.as_str()).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => continue,
            Err(e) => {
                report.findings.push(AccessFinding {
                    target: path.to_string(),
                    expected: "children this identity may list".to_owned(),
                    actual: "unknown".to_owned(),
                    outcome: FindingOutcome::Failed(from_zk(e, path.as_str()).to_string()),
                });
                continue;
            }
        };
        let mut children: Vec<String> = children;
        children.sort();
        for child in children {
            // ZooKeeper's own subtree, visible without a chroot.
            if path.is_root() && child == "zookeeper" {
                continue;
            }
            queue.push_back(path.join(&child)?);
        }
    }
    Ok(())
}
