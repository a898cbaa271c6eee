//! The ACLs nodes get: from the namespace's access policy (stored at
//! [`POLICY_PATH`]), or, without one, open to anyone or to the creator.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;

use base64::Engine as _;
use kingpin_api::access::{
    AccessPolicy, Accessor, AnonymousAccess, Area, Permissions, Role, DISCOVERY_ROOT, POLICY_PATH,
    STATUS_ROOT,
};
use kingpin_api::{Error, ErrorKind, NodePath, Result};
use sha1::{Digest as _, Sha1};
use zookeeper_client as zk;

use crate::error::from_zk;

/// How the nodes this process creates get their ACLs: the `acl` option of
/// a `zk://` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclMode {
    /// `acl=auto` (the default): the namespace's access policy when it has
    /// one (`kingpin acl setup` stores it at `/acl`); otherwise
    /// [`Creator`](AclMode::Creator) with `KINGPIN_ZK_DIGEST` set, else
    /// [`Open`](AclMode::Open).
    Auto,
    /// `acl=policy`: the namespace's access policy, and refuse to create
    /// nodes when there is none.
    Policy,
    /// `acl=open`: readable and writable by anyone (`world:anyone:cdrwa`).
    Open,
    /// `acl=creator`: readable and writable only by this process's own
    /// identity (`auth::cdrwa`); needs `KINGPIN_ZK_DIGEST`.
    Creator,
}

impl AclMode {
    /// Reads the option's value.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "auto" => Ok(AclMode::Auto),
            "policy" => Ok(AclMode::Policy),
            "open" => Ok(AclMode::Open),
            "creator" => Ok(AclMode::Creator),
            other => Err(Error::invalid(format!(
                "acl={other:?} is not an ACL mode; expected auto, policy, open or creator"
            ))),
        }
    }
}

/// The digest identity ZooKeeper derives from a user and password:
/// `user:base64(sha1("user:password"))`. Access policies name digest
/// identities as `digest:` followed by this, so they never hold a password.
///
/// ```
/// assert_eq!(
///     kingpin_zookeeper::digest_identity("super", "secret"),
///     "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
/// );
/// ```
pub fn digest_identity(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Checks that every identity of `policy` is a ZooKeeper id this module
/// can put in an ACL: `scheme:id`, digests as `digest:user:<28 base64
/// characters>` (never a password).
pub fn validate_policy(policy: &AccessPolicy) -> Result<()> {
    policy.validate()?;
    for role in Role::ALL {
        for identity in policy.identities(role) {
            validate_identity(role, identity)?;
        }
    }
    Ok(())
}

fn validate_identity(role: Role, identity: &str) -> Result<()> {
    let Some((scheme, id)) = identity.split_once(':') else {
        return Err(Error::invalid(format!(
            "{role} identity {identity:?} is not a ZooKeeper id: write scheme:id, e.g. \
             digest:monitor:<digest>, sasl:monitor or x509:CN=monitor"
        )));
    };
    if scheme.is_empty()
        || id.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(Error::invalid(format!(
            "{role} identity {identity:?} is not a ZooKeeper id (scheme:id)"
        )));
    }
    match scheme {
        "world" | "auth" => Err(Error::invalid(format!(
            "{role} identity {identity:?}: the {scheme} scheme is not an identity; \
             use `anonymous = \"read\"` for world-readable nodes"
        ))),
        "digest" => {
            let digest = id.split_once(':');
            let well_formed = digest.is_some_and(|(user, digest)| {
                !user.is_empty()
                    && digest.len() == 28
                    && base64::engine::general_purpose::STANDARD
                        .decode(digest)
                        .is_ok_and(|bytes| bytes.len() == 20)
            });
            if well_formed {
                Ok(())
            } else {
                // Never echo what may be a password.
                Err(Error::invalid(format!(
                    "{role} identity digest:{}:… is not user:<base64 sha1 digest>; a policy holds \
                     digests, never passwords (`kingpin acl digest USER` prints one)",
                    id.split(':').next().unwrap_or("")
                )))
            }
        }
        _ => Ok(()),
    }
}

fn zk_permission(p: Permissions) -> zk::Permission {
    let mut out = zk::Permission::NONE;
    for (granted, bit) in [
        (p.read, zk::Permission::READ),
        (p.write, zk::Permission::WRITE),
        (p.create, zk::Permission::CREATE),
        (p.delete, zk::Permission::DELETE),
        (p.admin, zk::Permission::ADMIN),
    ] {
        if granted {
            out = out | bit;
        }
    }
    out
}

/// An ACL in a canonical form: one entry per id, permissions merged,
/// sorted, so two ACLs that grant the same compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CanonicalAcl(BTreeMap<(String, String), i32>);

impl CanonicalAcl {
    pub(crate) fn of(acls: &[zk::Acl]) -> Self {
        let mut entries = BTreeMap::new();
        for acl in acls {
            let bits = permission_bits(acl.permission());
            if bits == 0 {
                continue;
            }
            *entries
                .entry((acl.scheme().to_owned(), acl.id().to_owned()))
                .or_insert(0) |= bits;
        }
        CanonicalAcl(entries)
    }

    /// The ACL as a client without the ADMIN right sees it: ZooKeeper
    /// hides digests from such clients (`digest:user:x`).
    fn redacted(&self) -> CanonicalAcl {
        CanonicalAcl(
            self.0
                .iter()
                .map(
                    |((scheme, id), bits)| match (scheme.as_str(), id.split_once(':')) {
                        ("digest", Some((user, _))) => {
                            ((scheme.clone(), format!("{user}:x")), *bits)
                        }
                        _ => ((scheme.clone(), id.clone()), *bits),
                    },
                )
                .collect(),
        )
    }

    fn is_redacted(&self) -> bool {
        self.0
            .keys()
            .any(|(scheme, id)| scheme == "digest" && id.ends_with(":x"))
    }

    /// Whether this ACL, as read from a node, is `expected`: exactly, or,
    /// when ZooKeeper hid the digests from the reader, up to the digests
    /// (the user names and rights still have to match). Returns the
    /// expected ACL as the reader can compare it.
    pub(crate) fn compare(&self, expected: &CanonicalAcl) -> (bool, CanonicalAcl) {
        if self.is_redacted() {
            let expected = expected.redacted();
            (self.redacted() == expected, expected)
        } else {
            (self == expected, expected.clone())
        }
    }
}

fn permission_bits(p: zk::Permission) -> i32 {
    [
        (zk::Permission::READ, 1),
        (zk::Permission::WRITE, 2),
        (zk::Permission::CREATE, 4),
        (zk::Permission::DELETE, 8),
        (zk::Permission::ADMIN, 16),
    ]
    .into_iter()
    .filter(|(bit, _)| p.has(*bit))
    .map(|(_, value)| value)
    .sum()
}

/// `scheme:id:crdwa` entries, as ZooKeeper's own tools print them.
impl fmt::Display for CanonicalAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no access for anyone)");
        }
        for (i, ((scheme, id), bits)) in self.0.iter().enumerate() {
            let letters: String = [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')]
                .into_iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|(_, letter)| letter)
                .collect();
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{scheme}:{id}:{letters}")?;
        }
        Ok(())
    }
}

/// The ACL of every kind of node under one policy, computed once.
#[derive(Debug)]
pub(crate) struct PolicyAcls {
    lists: HashMap<(Area, bool), Vec<zk::Acl>>,
}

impl PolicyAcls {
    pub(crate) fn new(policy: &AccessPolicy) -> Result<Self> {
        validate_policy(policy)?;
        let mut lists = HashMap::new();
        for (area, example) in [
            (Area::Shared, "/"),
            (Area::Discovery, DISCOVERY_ROOT),
            (Area::Status, STATUS_ROOT),
        ] {
            let path = NodePath::parse(example)?;
            for ephemeral in [false, true] {
                lists.insert((area, ephemeral), acl_list(policy, &path, ephemeral));
            }
        }
        Ok(PolicyAcls { lists })
    }

    /// The ACL a node at `path` gets.
    pub(crate) fn for_node(&self, path: &NodePath, ephemeral: bool) -> &[zk::Acl] {
        self.lists
            .get(&(Area::of(path), ephemeral))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Every identity of the policy with what it may do with nodes like
/// `path`; anonymous access as `world:anyone`.
fn acl_list(policy: &AccessPolicy, path: &NodePath, ephemeral: bool) -> Vec<zk::Acl> {
    let mut grants: BTreeMap<(String, String), Permissions> = BTreeMap::new();
    for role in Role::ALL {
        let granted = policy.permissions(Accessor::Role(role), path, ephemeral);
        for identity in policy.identities(role) {
            if let Some((scheme, id)) = identity.split_once(':') {
                let entry = grants
                    .entry((scheme.to_owned(), id.to_owned()))
                    .or_default();
                *entry = entry.union(granted);
            }
        }
    }
    if policy.anonymous != AnonymousAccess::None {
        let granted = policy.permissions(Accessor::Anonymous, path, ephemeral);
        grants.insert(("world".to_owned(), "anyone".to_owned()), granted);
    }
    grants
        .into_iter()
        .filter(|(_, granted)| !granted.is_none())
        .map(|((scheme, id), granted)| {
            zk::Acl::new(zk_permission(granted), zk::AuthId::new(&scheme, &id))
        })
        .collect()
}

/// What a node created now gets.
#[derive(Debug)]
pub(crate) enum NodeAcls {
    /// `world:anyone:cdrwa`.
    Open,
    /// `auth::cdrwa`: the creator's identity only.
    Creator,
    /// The namespace's policy.
    Policy(PolicyAcls),
}

impl NodeAcls {
    /// The ACL for a node at `path`.
    pub(crate) fn for_node(&self, path: &NodePath, ephemeral: bool) -> zk::Acls<'_> {
        match self {
            NodeAcls::Open => zk::Acls::anyone_all(),
            NodeAcls::Creator => zk::Acls::creator_all(),
            NodeAcls::Policy(policy) => zk::Acls::new(policy.for_node(path, ephemeral)),
        }
    }
}

/// Reads the namespace's access policy; `None` when it has none.
pub(crate) async fn read_policy(client: &zk::Client) -> Result<Option<AccessPolicy>> {
    match client.get_data(POLICY_PATH).await {
        Ok((data, _)) => parse_policy(&data).map(Some),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(from_zk(e, POLICY_PATH)),
    }
}

fn parse_policy(data: &[u8]) -> Result<AccessPolicy> {
    serde_json::from_slice(data).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("the access policy at {POLICY_PATH} is not valid JSON for a policy"),
        )
        .with_source(e)
    })
}

/// The ACLs this session gives the nodes it creates, following the
/// namespace's policy: read when first needed, with a watch on the policy
/// node, and read again once the watch has fired (the policy was created,
/// changed or deleted, or the session ended). ZooKeeper delivers a watch
/// event before the reply to any later request of the same session, so
/// after one round trip that follows a policy change, the next create
/// follows the new policy: processes pick up `kingpin acl setup` without a
/// restart.
pub(crate) struct AclSource {
    mode: AclMode,
    has_identity: bool,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    acls: Arc<NodeAcls>,
    /// Resolves when the policy node changes or the session ends.
    changed: Pin<Box<dyn Future<Output = zk::WatchedEvent> + Send>>,
}

impl fmt::Debug for AclSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclSource")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AclSource {
    pub(crate) fn new(mode: AclMode, has_identity: bool) -> Self {
        AclSource {
            mode,
            has_identity,
            cached: Mutex::new(None),
        }
    }

    /// What nodes created now get.
    pub(crate) async fn current(&self, client: &zk::Client) -> Result<Arc<NodeAcls>> {
        match self.mode {
            AclMode::Open => return Ok(Arc::new(NodeAcls::Open)),
            AclMode::Creator => return Ok(Arc::new(NodeAcls::Creator)),
            AclMode::Auto | AclMode::Policy => {}
        }
        if let Some(acls) = self.cached_acls() {
            return Ok(acls);
        }
        // Watch first, then read: a change after the read fires the watch.
        let (exists, watcher) = client
            .check_and_watch_stat(POLICY_PATH)
            .await
            .map_err(|e| from_zk(e, POLICY_PATH))?;
        let policy = match exists {
            Some(_) => read_policy(client).await?,
            None => None,
        };
        let acls = match (policy, self.mode) {
            (Some(policy), _) => Arc::new(NodeAcls::Policy(PolicyAcls::new(&policy)?)),
            (None, AclMode::Policy) => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "acl=policy, but the namespace has no access policy at {POLICY_PATH}; \
                         run `kingpin acl setup` first"
                    ),
                ))
            }
            (None, _) if self.has_identity => Arc::new(NodeAcls::Creator),
            (None, _) => Arc::new(NodeAcls::Open),
        };
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            acls: acls.clone(),
            changed: Box::pin(watcher.changed()),
        });
        Ok(acls)
    }

    /// The cached ACLs, unless the policy's watch has fired since.
    fn cached_acls(&self) -> Option<Arc<NodeAcls>> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let fired = (&mut cached.as_mut()?.changed).now_or_never().is_some();
        if fired {
            *cached = None;
            return None;
        }
        cached.as_ref().map(|c| c.acls.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: vec![format!("digest:{}", digest_identity("monitor", "m"))],
            registrars: vec!["sasl:registrar".into()],
            writers: vec![format!("digest:{}", digest_identity("admin", "a"))],
        }
    }

    #[test]
    fn digests_are_zookeepers() {
        // base64(sha1("super:secret")), as ZooKeeper's DigestAuthenticationProvider computes it.
        assert_eq!(
            digest_identity("super", "secret"),
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
    }

    #[test]
    fn identities_are_checked_without_echoing_passwords() {
        assert!(validate_policy(&policy()).is_ok());
        for (bad, hint) in [
            ("monitor", "scheme:id"),
            ("digest:monitor:hunter2", "never passwords"),
            ("world:anyone", "anonymous"),
            ("auth:", "scheme:id"),
            ("Digest:x:y", "scheme:id"),
        ] {
            let mut p = policy();
            p.readers = vec![bad.to_owned()];
            let err = validate_policy(&p).unwrap_err();
            assert!(err.to_string().contains(hint), "{bad}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn acls_grant_each_role_its_share() {
        let acls = PolicyAcls::new(&policy()).unwrap();
        let config = CanonicalAcl::of(acls.for_node(&NodePath::parse("/config/a").unwrap(), false));
        let text = config.to_string();
        assert!(text.contains("digest:admin:"), "{text}");
        assert!(text.contains("sasl:registrar:r"), "{text}");
        assert!(!text.contains("world"), "{text}");
        let serverset = acls.for_node(&NodePath::parse("/discovery/a/b").unwrap(), false);
        let text = CanonicalAcl::of(serverset).to_string();
        assert!(text.ends_with("sasl:registrar:cdr"), "{text}");
        let open = AccessPolicy {
            anonymous: AnonymousAccess::Read,
            ..policy()
        };
        let acls = PolicyAcls::new(&open).unwrap();
        let member = acls.for_node(
            &NodePath::parse("/discovery/a/b/member_0000000001").unwrap(),
            true,
        );
        let text = CanonicalAcl::of(member).to_string();
        assert!(text.ends_with("world:anyone:r"), "{text}");
        assert!(text.contains("sasl:registrar:r,"), "{text}");
    }

    #[test]
    fn canonical_acls_merge_entries() {
        let a = [
            zk::Acl::new(zk::Permission::READ, zk::AuthId::new("sasl", "x")),
            zk::Acl::new(zk::Permission::WRITE, zk::AuthId::new("sasl", "x")),
        ];
        let b = [zk::Acl::new(
            zk::Permission::READ | zk::Permission::WRITE,
            zk::AuthId::new("sasl", "x"),
        )];
        assert_eq!(CanonicalAcl::of(&a), CanonicalAcl::of(&b));
        assert_eq!(CanonicalAcl::of(&b).to_string(), "sasl:x:rw");
    }

    #[test]
    fn hidden_digests_compare_by_user_and_rights() {
        let expected = CanonicalAcl::of(&[zk::Acl::new(
            zk::Permission::READ,
            zk::AuthId::new("digest", "monitor:+UzeCJPsmfM9jKj8YMVLsoMyJHk="),
        )]);
        let seen = |id: &str, permission| {
            CanonicalAcl::of(&[zk::Acl::new(permission, zk::AuthId::new("digest", id))])
        };
        assert!(seen("monitor:x", zk::Permission::READ).compare(&expected).0);
        assert!(!seen("monitor:x", zk::Permission::ALL).compare(&expected).0);
        assert!(!seen("other:x", zk::Permission::READ).compare(&expected).0);
        assert!(
            !seen("monitor:AAAAAAAAAAAAAAAAAAAAAAAAAAA=", zk::Permission::READ)
                .compare(&expected)
                .0
        );
    }
}
