//! Least privilege on the coordinator: who may read and write which nodes.
//!
//! A deployment has three kinds of processes, and an [`AccessPolicy`] names
//! the identities of each:
//!
//! | role | who | may |
//! |---|---|---|
//! | [`Role::Reader`] | the monitor, coordinator-fed readers | read every node; create and delete its own ephemeral status node under [`STATUS_ROOT`] |
//! | [`Role::Registrar`] | `kingpin register`, the Thrift server helper | read every node; create and delete serverset members under [`DISCOVERY_ROOT`] |
//! | [`Role::Writer`] | the CLI, the console, the config core | everything |
//!
//! Anonymous clients (no identity) get what [`AnonymousAccess`] says:
//! nothing, or reading.
//!
//! The policy is backend-neutral; each backend with access control turns
//! it into its own terms (ZooKeeper ACLs per node, etcd roles with key
//! ranges) and stores it at [`POLICY_PATH`] so that every process can
//! follow it. [`AccessPolicy::permissions`] is the rule every backend
//! implements, node by node.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::path::NodePath;

/// Where the policy is stored in a namespace (JSON), readable by every
/// role, writable by writers.
pub const POLICY_PATH: &str = "/acl";
/// Parent of every serverset; registrars create and delete members below it.
pub const DISCOVERY_ROOT: &str = "/discovery";
/// Parent of the per-host status nodes monitors report to (one ephemeral
/// node per host); readers create and delete their own below it.
pub const STATUS_ROOT: &str = "/status";

/// The three identities of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything; writes only its own ephemeral status node.
    Reader,
    /// Reads everything; joins and leaves serversets.
    Registrar,
    /// Writes configs, metaconfigs, dependencies and environments.
    Writer,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Reader, Role::Registrar, Role::Writer];

    /// `reader`, `registrar` or `writer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Registrar => "registrar",
            Role::Writer => "writer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What clients without an identity may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnonymousAccess {
    /// Nothing (the default).
    #[default]
    None,
    /// Read every node, as a reader does; write nothing.
    Read,
}

/// Who is a reader, a registrar and a writer.
///
/// Identities are in the backend's own terms: ZooKeeper ids as
/// `scheme:id` (`digest:monitor:<base64 sha1>`, `sasl:monitor`,
/// `x509:CN=monitor`, `ip:10.0.0.0/8`), etcd user names. The policy never
/// holds a password.
///
/// ```
/// use kingpin_api::access::{AccessPolicy, Role};
/// let policy: AccessPolicy = serde_json::from_str(
///     r#"{"readers":["sasl:monitor"],"registrars":[],"writers":["sasl:admin"]}"#,
/// )?;
/// assert_eq!(policy.identities(Role::Reader), ["sasl:monitor"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// What clients without an identity may do.
    #[serde(default)]
    pub anonymous: AnonymousAccess,
    /// Reader identities.
    #[serde(default)]
    pub readers: Vec<String>,
    /// Registrar identities.
    #[serde(default)]
    pub registrars: Vec<String>,
    /// Writer identities (at least one).
    pub writers: Vec<String>,
}

/// What one accessor may do with one node, in ZooKeeper's terms (etcd can
/// only grant read or read-write on key ranges, see its backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// Read the node's data and list its children.
    pub read: bool,
    /// Change the node's data.
    pub write: bool,
    /// Create children.
    pub create: bool,
    /// Delete children.
    pub delete: bool,
    /// Change the node's access control.
    pub admin: bool,
}

impl Permissions {
    /// Nothing at all.
    pub const NONE: Permissions = Permissions {
        read: false,
        write: false,
        create: false,
        delete: false,
        admin: false,
    };
    /// Reading only.
    pub const READ: Permissions = Permissions {
        read: true,
        ..Permissions::NONE
    };
    /// Everything.
    pub const ALL: Permissions = Permissions {
        read: true,
        write: true,
        create: true,
        delete: true,
        admin: true,
    };

    /// Whether nothing is granted.
    pub fn is_none(self) -> bool {
        self == Permissions::NONE
    }

    /// Both sets of rights.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions {
            read: self.read || other.read,
            write: self.write || other.write,
            create: self.create || other.create,
            delete: self.delete || other.delete,
            admin: self.admin || other.admin,
        }
    }
}

/// Who is asking: a role, or a client without identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accessor {
    /// A client that presented no identity.
    Anonymous,
    /// A client with one of the policy's identities.
    Role(Role),
}

/// The part of the namespace a node belongs to, as far as access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// [`DISCOVERY_ROOT`] and below: serversets.
    Discovery,
    /// [`STATUS_ROOT`] and below: monitors' status nodes.
    Status,
    /// Everything else: configs, metaconfigs, dependencies, environments,
    /// the root and the policy itself.
    Shared,
}

impl Area {
    /// The area `path` lies in.
    pub fn of(path: &NodePath) -> Area {
        let first = path.components().next().unwrap_or("");
        if first == &DISCOVERY_ROOT[1..] {
            Area::Discovery
        } else if first == &STATUS_ROOT[1..] {
            Area::Status
        } else {
            Area::Shared
        }
    }
}

impl AccessPolicy {
    /// A policy with these writers and no one else.
    pub fn new(writers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: Vec::new(),
            registrars: Vec::new(),
            writers: writers.into_iter().map(Into::into).collect(),
        }
    }

    /// The identities of `role`.
    pub fn identities(&self, role: Role) -> &[String] {
        match role {
            Role::Reader => &self.readers,
            Role::Registrar => &self.registrars,
            Role::Writer => &self.writers,
        }
    }

    /// Checks what every backend needs: at least one writer, no empty or
    /// duplicated identity within a role, no control characters.
    pub fn validate(&self) -> Result<()> {
        if self.writers.is_empty() {
            return Err(Error::invalid(
                "the access policy names no writer: nobody could change anything afterwards",
            ));
        }
        for role in Role::ALL {
            let mut seen = BTreeSet::new();
            for identity in self.identities(role) {
                if identity.trim().is_empty() || identity.chars().any(char::is_control) {
                    return Err(Error::invalid(format!(
                        "the access policy has an empty or malformed {role} identity"
                    )));
                }
                if !seen.insert(identity) {
                    return Err(Error::invalid(format!(
                        "the access policy names {role} identity {identity:?} twice"
                    )));
                }
            }
        }
        Ok(())
    }

    /// What `accessor` may do with the node at `path` (`ephemeral`: the
    /// node lives with its creator's session), the rule every backend
    /// implements:
    ///
    /// - writers: everything, everywhere;
    /// - readers and registrars: read everywhere; readers may also create
    ///   and delete children of [`STATUS_ROOT`] and its persistent
    ///   descendants, and write ephemeral nodes there (their status);
    ///   registrars may create and delete children of [`DISCOVERY_ROOT`]
    ///   and its persistent descendants (serverset members and the
    ///   serverset nodes above them);
    /// - anonymous clients: read everywhere with [`AnonymousAccess::Read`],
    ///   otherwise nothing.
    pub fn permissions(&self, accessor: Accessor, path: &NodePath, ephemeral: bool) -> Permissions {
        let role = match accessor {
            Accessor::Anonymous => {
                return match self.anonymous {
                    AnonymousAccess::None => Permissions::NONE,
                    AnonymousAccess::Read => Permissions::READ,
                }
            }
            Accessor::Role(role) => role,
        };
        let manages = match role {
            Role::Writer => return Permissions::ALL,
            Role::Reader => Area::Status,
            Role::Registrar => Area::Discovery,
        };
        if Area::of(path) != manages {
            return Permissions::READ;
        }
        if ephemeral {
            // A reader updates its status node; members are written once.
            Permissions {
                write: role == Role::Reader,
                ..Permissions::READ
            }
        } else {
            Permissions {
                create: true,
                delete: true,
                ..Permissions::READ
            }
        }
    }
}

/// The outcome of setting up or checking a policy on a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessReport {
    /// How many nodes (or roles, users) were looked at.
    pub checked: usize,
    /// Every one that did not match the policy, in the order found.
    pub findings: Vec<AccessFinding>,
}

impl AccessReport {
    /// Whether everything matched (or was made to match).
    pub fn is_clean(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f.outcome, FindingOutcome::Fixed))
    }
}

/// One node (or etcd role or user) whose access did not match the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFinding {
    /// The node path, or `role <name>` / `user <name>` on etcd.
    pub target: String,
    /// What the policy asks for, in the backend's notation.
    pub expected: String,
    /// What was there.
    pub actual: String,
    /// What became of it.
    pub outcome: FindingOutcome,
}

/// What became of a mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingOutcome {
    /// Reported only (a check, or a dry run).
    Mismatch,
    /// Changed to match the policy.
    Fixed,
    /// Could not be changed; why.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: vec!["r".into()],
            registrars: vec!["g".into()],
            writers: vec!["w".into()],
        }
    }

    fn p(path: &str) -> NodePath {
        NodePath::parse(path).unwrap()
    }

    #[test]
    fn areas_are_the_top_level_component() {
        assert_eq!(Area::of(&p("/discovery")), Area::Discovery);
        assert_eq!(Area::of(&p("/discovery/a/b/member_1")), Area::Discovery);
        assert_eq!(Area::of(&p("/discoveryx")), Area::Shared);
        assert_eq!(Area::of(&p("/status/host1")), Area::Status);
        assert_eq!(Area::of(&p("/config/discovery")), Area::Shared);
        assert_eq!(Area::of(&NodePath::root()), Area::Shared);
    }

    #[test]
    fn each_role_gets_its_share() {
        let policy = policy();
        let reader = Accessor::Role(Role::Reader);
        let registrar = Accessor::Role(Role::Registrar);
        let writer = Accessor::Role(Role::Writer);
        let config = p("/config/a");
        let serverset = p("/discovery/svc/prod");
        let member = p("/discovery/svc/prod/member_0000000001");
        let status = p("/status");
        let host = p("/status/host1");
        for path in [&config, &serverset, &member, &status, &host] {
            assert_eq!(
                policy.permissions(writer, path, false),
                Permissions::ALL,
                "{path}"
            );
            assert!(policy.permissions(reader, path, false).read, "{path}");
            assert!(policy.permissions(registrar, path, false).read, "{path}");
            assert!(!policy.permissions(reader, path, false).admin, "{path}");
        }
        assert_eq!(
            policy.permissions(reader, &config, false),
            Permissions::READ
        );
        assert_eq!(
            policy.permissions(registrar, &config, false),
            Permissions::READ
        );
        let manage = policy.permissions(registrar, &serverset, false);
        assert!(manage.create && manage.delete && !manage.write);
        assert_eq!(
            policy.permissions(registrar, &member, true),
            Permissions::READ
        );
        assert_eq!(
            policy.permissions(reader, &serverset, false),
            Permissions::READ
        );
        let own = policy.permissions(reader, &status, false);
        assert!(own.create && own.delete && !own.write);
        assert!(policy.permissions(reader, &host, true).write);
        assert_eq!(
            policy.permissions(registrar, &host, true),
            Permissions::READ
        );
        assert_eq!(
            policy.permissions(Accessor::Anonymous, &config, false),
            Permissions::NONE
        );
        let open = AccessPolicy {
            anonymous: AnonymousAccess::Read,
            ..policy
        };
        assert_eq!(
            open.permissions(Accessor::Anonymous, &member, true),
            Permissions::READ
        );
    }

    #[test]
    fn validation_refuses_lockouts_and_duplicates() {
        assert!(policy().validate().is_ok());
        assert!(AccessPolicy::new(Vec::<String>::new()).validate().is_err());
        let mut twice = policy();
        twice.readers.push("r".into());
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let mut empty = policy();
        empty.registrars.push(" ".into());
        assert!(empty.validate().is_err());
        let parsed: AccessPolicy =
            serde_json::from_str(r#"{"anonymous":"read","writers":["w"]}"#).unwrap();
        assert_eq!(parsed.anonymous, AnonymousAccess::Read);
        assert!(serde_json::from_str::<AccessPolicy>(r#"{"writers":[],"owner":"x"}"#).is_err());
    }
}
