//! Least privilege on a real etcd with `auth enable`: a private server per
//! test (auth is server-wide), its root and users created by the test
//! server helper, the roles by `roles::apply_policy`, then the access suite.

use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::access::{AccessPolicy, AnonymousAccess, FindingOutcome, Role};
use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath};
use kingpin_conformance_tests::access::AccessHarness;
use kingpin_conformance_tests::access_suite;
use kingpin_conformance_tests::endpoints::private_server;
use kingpin_conformance_tests::servers::{LocalServer, ServerKind};
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_etcd::roles::{apply_policy, check_policy, role_name};
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};

/// A private etcd with auth enabled, one user per role plus root, and the
/// policy set up on a fresh prefix.
struct EtcdAccess {
    server: LocalServer,
    prefix: String,
    root_password: String,
    /// `(user, password)` per role.
    users: Vec<(Role, String, String)>,
}

impl EtcdAccess {
    async fn new(case: &str) -> Option<Self> {
        let server = private_server(ServerKind::Etcd, case).await?;
        let users: Vec<(Role, String, String)> = Role::ALL
            .into_iter()
            .map(|role| {
                (
                    role,
                    format!("kp-{role}"),
                    format!("pw-{}", unique_suffix()),
                )
            })
            .collect();
        let harness = EtcdAccess {
            server,
            prefix: unique_namespace(),
            root_password: format!("root-{}", unique_suffix()),
            users,
        };
        let accounts: Vec<(String, String)> = harness
            .users
            .iter()
            .map(|(_, user, password)| (user.clone(), password.clone()))
            .collect();
        harness
            .server
            .enable_etcd_auth(&harness.root_password, &accounts)
            .await
            .expect("auth enabled");
        let report = apply_policy(&harness.root(), &harness.policy(), false)
            .await
            .expect("the policy is set up");
        assert!(report.is_clean(), "{report:?}");
        Some(harness)
    }

    fn policy(&self) -> AccessPolicy {
        let names = |role: Role| {
            self.users
                .iter()
                .filter(|(r, _, _)| *r == role)
                .map(|(_, user, _)| user.clone())
                .collect()
        };
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: names(Role::Reader),
            registrars: names(Role::Registrar),
            writers: names(Role::Writer),
        }
    }

    fn config(&self) -> EtcdConfig {
        EtcdConfig::new([self.server.endpoint()])
            .with_prefix(&self.prefix)
            .expect("valid prefix")
    }

    fn root(&self) -> EtcdConfig {
        self.config()
            .with_credentials("root", self.root_password.clone())
    }

    fn as_role(&self, role: Role) -> EtcdConfig {
        let (_, user, password) = self
            .users
            .iter()
            .find(|(r, _, _)| *r == role)
            .expect("a user per role");
        self.config()
            .with_credentials(user.clone(), password.clone())
    }
}

#[async_trait]
impl AccessHarness for EtcdAccess {
    fn name(&self) -> &str {
        "etcd"
    }

    fn anonymous(&self) -> AnonymousAccess {
        AnonymousAccess::None
    }

    async fn connect(&self, role: Option<Role>) -> kingpin_api::Result<Arc<dyn Coordinator>> {
        let config = match role {
            Some(role) => self.as_role(role),
            None => self.config(),
        };
        Ok(Arc::new(EtcdCoordinator::connect(config).await?))
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.users.iter().map(|(_, _, pw)| pw.clone()).collect();
        secrets.push(self.root_password.clone());
        secrets
    }
}

async fn harness(case: &str) -> Option<EtcdAccess> {
    EtcdAccess::new(case).await
}

access_suite!(harness);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_reports_then_repairs_roles_and_users() {
    let Some(h) = EtcdAccess::new("setup_repairs").await else {
        return;
    };
    assert!(check_policy(&h.root(), None)
        .await
        .expect("check")
        .findings
        .is_empty());
    // Someone widens the reader role and grants the writer role to the
    // registrar's user.
    let mut client = etcd_client::Client::connect(
        [h.server.endpoint()],
        Some(etcd_client::ConnectOptions::new().with_user("root", h.root_password.clone())),
    )
    .await
    .expect("root client");
    let reader_role = role_name(&h.prefix, Role::Reader);
    client
        .role_grant_permission(
            reader_role.as_str(),
            etcd_client::Permission::read_write(format!("{}/", h.prefix)).with_prefix(),
        )
        .await
        .expect("widen");
    let writer_role = role_name(&h.prefix, Role::Writer);
    client
        .user_grant_role("kp-registrar", writer_role.as_str())
        .await
        .expect("grant");
    let registrar = h.connect(Some(Role::Registrar)).await.expect("registrar");
    registrar
        .create(
            &NodePath::parse("/config/sneaky").unwrap(),
            b"",
            CreateMode::Persistent,
        )
        .await
        .expect("the widened role lets the registrar write configs");

    let check = check_policy(&h.root(), None).await.expect("check");
    let targets: Vec<&str> = check.findings.iter().map(|f| f.target.as_str()).collect();
    assert!(
        targets.contains(&format!("role {reader_role}").as_str()),
        "{targets:?}"
    );
    assert!(targets.contains(&"user kp-registrar"), "{targets:?}");
    assert!(check
        .findings
        .iter()
        .all(|f| f.outcome == FindingOutcome::Mismatch));

    let fixed = apply_policy(&h.root(), &h.policy(), false)
        .await
        .expect("setup again");
    assert!(fixed.is_clean(), "{fixed:?}");
    assert_eq!(fixed.findings.len(), 2, "{fixed:?}");
    let err = registrar
        .set(&NodePath::parse("/config/sneaky").unwrap(), b"x", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(check_policy(&h.root(), None)
        .await
        .expect("check")
        .findings
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_needs_root_and_existing_users() {
    let Some(h) = EtcdAccess::new("setup_needs_root").await else {
        return;
    };
    let err = apply_policy(&h.as_role(Role::Writer), &h.policy(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let mut policy = h.policy();
    policy.readers.push("nobody-yet".into());
    let report = apply_policy(&h.root(), &policy, false)
        .await
        .expect("setup");
    let missing = report
        .findings
        .iter()
        .find(|f| f.target == "user nobody-yet")
        .expect("the missing user is reported");
    assert!(
        matches!(&missing.outcome, FindingOutcome::Failed(why) if why.contains("etcdctl user add nobody-yet")),
        "{missing:?}"
    );
    // Wrong credentials are refused as such, and the password is not echoed.
    let wrong = h
        .config()
        .with_credentials("kp-reader", "not-the-password-xyzzy");
    let err = EtcdCoordinator::connect(wrong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!format!("{err} {err:?}").contains("xyzzy"), "{err:?}");
}
