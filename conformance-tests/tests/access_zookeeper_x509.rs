//! Least privilege on a real ZooKeeper that knows clients by their TLS
//! certificates (the x509 auth provider on its TLS port): identities are
//! `x509:CN=…`, each role's process presents its certificate and holds no
//! password. The access suite, as with digests, case after case on one
//! server of the test's own (a JVM per case would load CI for nothing):
//! each case in its own namespace.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_api::access::{AccessPolicy, AnonymousAccess, Role};
use kingpin_api::{Coordinator, ErrorKind};
use kingpin_conformance_tests::access::{self, AccessHarness};
use kingpin_conformance_tests::certificates::TestCertificates;
use kingpin_conformance_tests::endpoints::private_tls_zookeeper;
use kingpin_conformance_tests::servers::LocalServer;
use kingpin_conformance_tests::unique_namespace;
use kingpin_zookeeper::{apply_policy, ZooKeeperConfig, ZooKeeperCoordinator};

const USERS: [(Role, &str); 3] = [
    (Role::Reader, "kp-reader"),
    (Role::Registrar, "kp-registrar"),
    (Role::Writer, "kp-writer"),
];
/// A certificate the CA signed for a name the policy does not mention.
const STRANGER: &str = "kp-stranger";

struct X509Access<'a> {
    server: &'a LocalServer,
    certificates: &'a TestCertificates,
    namespace: String,
}

impl<'a> X509Access<'a> {
    /// A fresh namespace on `server`, its policy set up by the writer.
    async fn new(server: &'a LocalServer, certificates: &'a TestCertificates) -> Self {
        let harness = X509Access {
            server,
            certificates,
            namespace: unique_namespace(),
        };
        let report = apply_policy(&harness.config("kp-writer"), &harness.policy(), false)
            .await
            .expect("the writer sets the policy up with its certificate");
        assert!(report.is_clean(), "{report:?}");
        harness
    }

    fn policy(&self) -> AccessPolicy {
        let names = |role: Role| {
            USERS
                .iter()
                .filter(|(r, _)| *r == role)
                .map(|(_, user)| format!("x509:CN={user}"))
                .collect()
        };
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: names(Role::Reader),
            registrars: names(Role::Registrar),
            writers: names(Role::Writer),
        }
    }

    /// A session over TLS presenting `name`'s certificate.
    fn config(&self, name: &str) -> ZooKeeperConfig {
        let (cert, key) = self.certificates.client(name);
        ZooKeeperConfig::new([self.server.tls_endpoint().expect("a TLS server")])
            .with_chroot(&self.namespace)
            .expect("valid chroot")
            .with_session_timeout(Duration::from_secs(4))
            .with_tls_files(&self.certificates.ca(), Some(&cert), Some(&key))
            .expect("readable certificates")
    }
}

#[async_trait]
impl AccessHarness for X509Access<'_> {
    fn name(&self) -> &str {
        "zookeeper (x509)"
    }

    fn anonymous(&self) -> AnonymousAccess {
        AnonymousAccess::None
    }

    /// Without a role: a valid certificate the policy does not name (the
    /// TLS port refuses a client without any).
    async fn connect(&self, role: Option<Role>) -> kingpin_api::Result<Arc<dyn Coordinator>> {
        let name = match role {
            Some(role) => USERS
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, user)| *user)
                .expect("a user per role"),
            None => STRANGER,
        };
        Ok(Arc::new(
            ZooKeeperCoordinator::connect(self.config(name)).await?,
        ))
    }

    fn secrets(&self) -> Vec<String> {
        USERS
            .iter()
            .map(|(_, user)| {
                let (_, key) = self.certificates.client(user);
                let pem = std::fs::read_to_string(key).expect("a key");
                pem.lines().nth(1).expect("a PEM body").to_owned()
            })
            .collect()
    }
}

async fn private_server(case: &str) -> Option<(LocalServer, TestCertificates)> {
    let mut names: Vec<&str> = USERS.iter().map(|(_, user)| *user).collect();
    names.push(STRANGER);
    private_tls_zookeeper(case, &names).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_suite_with_certificates() {
    let Some((server, certificates)) = private_server("x509_access_suite").await else {
        return;
    };
    let fresh = || X509Access::new(&server, &certificates);
    access::writer_does_everything(&fresh().await).await;
    access::reader_reads_everything_and_writes_nothing(&fresh().await).await;
    access::reader_keeps_its_own_status_node(&fresh().await).await;
    access::registrar_joins_and_leaves_but_writes_no_config(&fresh().await).await;
    access::anonymous_gets_what_the_policy_gives(&fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_refuses_a_certificate_that_is_not_a_writer() {
    let Some((server, certificates)) = private_server("x509_setup_refuses").await else {
        return;
    };
    let h = X509Access::new(&server, &certificates).await;
    let err = apply_policy(&h.config("kp-reader"), &h.policy(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("lock it out"), "{err}");
}
