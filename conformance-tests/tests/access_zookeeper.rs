//! Least privilege on a real ZooKeeper with digest ACLs: the access suite
//! with a policy set up by `apply_policy`, and what setting up and
//! checking a policy does to an existing namespace.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_api::access::{
    AccessPolicy, AnonymousAccess, FindingOutcome, Role, DISCOVERY_ROOT, POLICY_PATH, STATUS_ROOT,
};
use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath};
use kingpin_conformance_tests::access::AccessHarness;
use kingpin_conformance_tests::access_suite;
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_zookeeper::{
    apply_policy, check_policy, digest_identity, AclMode, ZooKeeperConfig, ZooKeeperCoordinator,
};

/// A namespace on the shared ZooKeeper with one digest identity per role.
struct ZooKeeperAccess {
    hosts: String,
    namespace: String,
    /// `user:password` per role.
    credentials: Vec<(Role, String)>,
    anonymous: AnonymousAccess,
}

impl ZooKeeperAccess {
    async fn new(case: &str, anonymous: AnonymousAccess) -> Option<Self> {
        let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
        let credentials = Role::ALL
            .into_iter()
            .map(|role| (role, format!("kp-{role}:pw-{}", unique_suffix())))
            .collect();
        let harness = ZooKeeperAccess {
            hosts,
            namespace: unique_namespace(),
            credentials,
            anonymous,
        };
        let report = apply_policy(
            &harness.config(Some(Role::Writer)),
            &harness.policy(),
            false,
        )
        .await
        .expect("the policy is set up");
        assert!(report.is_clean(), "{report:?}");
        Some(harness)
    }

    fn credential(&self, role: Role) -> &str {
        self.credentials
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, c)| c.as_str())
            .expect("every role has a credential")
    }

    fn identity(&self, role: Role) -> String {
        let (user, password) = self
            .credential(role)
            .split_once(':')
            .expect("user:password");
        format!("digest:{}", digest_identity(user, password))
    }

    fn policy(&self) -> AccessPolicy {
        AccessPolicy {
            anonymous: self.anonymous,
            readers: vec![self.identity(Role::Reader)],
            registrars: vec![self.identity(Role::Registrar)],
            writers: vec![self.identity(Role::Writer)],
        }
    }

    fn config(&self, role: Option<Role>) -> ZooKeeperConfig {
        let config = ZooKeeperConfig::new([self.hosts.clone()])
            .with_chroot(&self.namespace)
            .expect("valid chroot")
            .with_session_timeout(Duration::from_secs(4));
        match role {
            Some(role) => config
                .with_digest(self.credential(role))
                .expect("valid credentials"),
            None => config,
        }
    }
}

#[async_trait]
impl AccessHarness for ZooKeeperAccess {
    fn name(&self) -> &str {
        "zookeeper"
    }

    fn anonymous(&self) -> AnonymousAccess {
        self.anonymous
    }

    async fn connect(&self, role: Option<Role>) -> kingpin_api::Result<Arc<dyn Coordinator>> {
        Ok(Arc::new(
            ZooKeeperCoordinator::connect(self.config(role)).await?,
        ))
    }

    fn secrets(&self) -> Vec<String> {
        self.credentials
            .iter()
            .map(|(_, c)| c.split_once(':').expect("user:password").1.to_owned())
            .collect()
    }
}

async fn harness(case: &str) -> Option<ZooKeeperAccess> {
    ZooKeeperAccess::new(case, AnonymousAccess::None).await
}

access_suite!(harness);

fn p(path: &str) -> NodePath {
    NodePath::parse(path).expect("valid path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_policy_lets_anyone_read_and_nobody_write() {
    let Some(h) = ZooKeeperAccess::new("anonymous_read", AnonymousAccess::Read).await else {
        return;
    };
    kingpin_conformance_tests::access::anonymous_gets_what_the_policy_gives(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_fixes_existing_nodes_and_check_reports_strays() {
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, "setup_fixes").await else {
        return;
    };
    // A namespace from before the policy: open nodes, a member among them.
    let h = ZooKeeperAccess {
        hosts,
        namespace: unique_namespace(),
        credentials: Role::ALL
            .into_iter()
            .map(|role| (role, format!("kp-{role}:pw-{}", unique_suffix())))
            .collect(),
        anonymous: AnonymousAccess::None,
    };
    let old = h.connect(None).await.expect("an open session");
    old.create(&p("/config/a/b"), b"1", CreateMode::Persistent)
        .await
        .expect("open create");
    old.create(
        &p("/discovery/svc/prod/member_"),
        b"{}",
        CreateMode::EphemeralSequential,
    )
    .await
    .expect("open member");

    let dry = apply_policy(&h.config(Some(Role::Writer)), &h.policy(), true)
        .await
        .expect("a dry run");
    assert!(!dry.is_clean());
    assert!(dry
        .findings
        .iter()
        .all(|f| f.outcome == FindingOutcome::Mismatch));
    let targets: Vec<&str> = dry.findings.iter().map(|f| f.target.as_str()).collect();
    for expected in [POLICY_PATH, STATUS_ROOT, "/", "/config/a/b", DISCOVERY_ROOT] {
        assert!(targets.contains(&expected), "{expected} in {targets:?}");
    }
    // A dry run changed nothing: anyone still writes.
    old.set(&p("/config/a/b"), b"2", None)
        .await
        .expect("still open after a dry run");

    let report = apply_policy(&h.config(Some(Role::Writer)), &h.policy(), false)
        .await
        .expect("setup");
    assert!(report.is_clean(), "{report:?}");
    assert!(report.checked >= 8, "{report:?}");
    let err = old.set(&p("/config/a/b"), b"3", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let check = check_policy(&h.config(Some(Role::Reader)), None)
        .await
        .expect("a reader checks");
    assert!(check.findings.is_empty(), "{check:?}");
    // Setting it up again finds nothing to do.
    let again = apply_policy(&h.config(Some(Role::Writer)), &h.policy(), false)
        .await
        .expect("setup again");
    assert!(again.findings.is_empty(), "{again:?}");

    // A writer that insists on open ACLs makes a stray the check reports.
    let stray = ZooKeeperCoordinator::connect(
        h.config(Some(Role::Writer))
            .with_acl_mode(AclMode::Open)
            .expect("mode"),
    )
    .await
    .expect("connect");
    stray
        .create(&p("/config/stray"), b"", CreateMode::Persistent)
        .await
        .expect("create");
    let check = check_policy(&h.config(Some(Role::Writer)), None)
        .await
        .expect("check");
    assert_eq!(check.findings.len(), 1, "{check:?}");
    assert_eq!(check.findings[0].target, "/config/stray");
    assert!(check.findings[0].actual.contains("world:anyone:cdrwa"));
    assert_eq!(check.findings[0].outcome, FindingOutcome::Mismatch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_writers_follow_a_policy_set_up_after_they_connected() {
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, "running_writers").await else {
        return;
    };
    let h = ZooKeeperAccess {
        hosts,
        namespace: unique_namespace(),
        credentials: Role::ALL
            .into_iter()
            .map(|role| (role, format!("kp-{role}:pw-{}", unique_suffix())))
            .collect(),
        anonymous: AnonymousAccess::None,
    };
    let writer = h.connect(Some(Role::Writer)).await.expect("connect");
    // Before the policy: the creator's own ACL (auto mode with an identity).
    writer
        .create(&p("/config/before"), b"", CreateMode::Persistent)
        .await
        .expect("create");
    apply_policy(&h.config(Some(Role::Writer)), &h.policy(), false)
        .await
        .expect("setup");
    // The policy node's watch event reaches the running session before the
    // reply to its next request; the create after that follows the policy,
    // so the reader can read the node, without any restart.
    writer
        .exists(&p(POLICY_PATH))
        .await
        .expect("a round trip")
        .expect("the policy exists");
    let path = p("/config/after");
    writer
        .create(&path, b"x", CreateMode::Persistent)
        .await
        .expect("create after setup");
    let reader = h.connect(Some(Role::Reader)).await.expect("reader");
    assert_eq!(
        reader.get(&path).await.expect("the reader reads").data,
        b"x"
    );
    // Setup gave the node created before it (the writer's own) the policy.
    reader
        .get(&p("/config/before"))
        .await
        .expect("the reader reads a node from before the policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_refuses_to_lock_its_runner_out_and_acl_policy_needs_a_policy() {
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, "setup_refuses").await else {
        return;
    };
    let h = ZooKeeperAccess {
        hosts,
        namespace: unique_namespace(),
        credentials: Role::ALL
            .into_iter()
            .map(|role| (role, format!("kp-{role}:pw-{}", unique_suffix())))
            .collect(),
        anonymous: AnonymousAccess::None,
    };
    let err = apply_policy(&h.config(Some(Role::Reader)), &h.policy(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("lock it out"), "{err}");
    let err = apply_policy(&h.config(None), &h.policy(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("KINGPIN_ZK_DIGEST"), "{err}");
    let mut with_password = h.policy();
    with_password.readers = vec!["digest:kp-reader:hunter2".into()];
    let err = apply_policy(&h.config(Some(Role::Writer)), &with_password, false)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // acl=policy on a namespace without one refuses to create anything.
    let writer = ZooKeeperCoordinator::connect(
        h.config(Some(Role::Writer))
            .with_acl_mode(AclMode::Policy)
            .expect("mode"),
    )
    .await;
    let err = match writer {
        Ok(writer) => writer
            .create(&p("/config/x"), b"", CreateMode::Persistent)
            .await
            .unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains("kingpin acl setup"), "{err}");
}
