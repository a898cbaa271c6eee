//! Least privilege on a real etcd that authenticates clients by TLS
//! certificate (`--client-cert-auth`, then `auth enable`): each role's
//! process presents a certificate whose common name is its etcd user, and
//! holds no password at all. The access suite, as with passwords.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::access::{AccessPolicy, AnonymousAccess, Role};
use kingpin_api::Coordinator;
use kingpin_conformance_tests::access::AccessHarness;
use kingpin_conformance_tests::access_suite;
use kingpin_conformance_tests::certificates::TestCertificates;
use kingpin_conformance_tests::endpoints::private_tls_etcd;
use kingpin_conformance_tests::servers::LocalServer;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_etcd::roles::apply_policy;
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};

const USERS: [(Role, &str); 3] = [
    (Role::Reader, "kp-reader"),
    (Role::Registrar, "kp-registrar"),
    (Role::Writer, "kp-writer"),
];
/// A certificate the CA signed, for a name etcd has no user for.
const STRANGER: &str = "kp-stranger";

struct CertificateAccess {
    server: LocalServer,
    certificates: TestCertificates,
    prefix: String,
}

impl CertificateAccess {
    async fn new(case: &str) -> Option<Self> {
        let mut names: Vec<&str> = USERS.iter().map(|(_, user)| *user).collect();
        names.push(STRANGER);
        let (server, certificates) = private_tls_etcd(case, &names).await?;
        // Users need a password to exist in etcd 3.4; nobody ever uses it.
        let accounts: Vec<(String, String)> = USERS
            .iter()
            .map(|(_, user)| (user.to_string(), format!("unused-{}", unique_suffix())))
            .collect();
        server
            .enable_etcd_auth(&format!("unused-{}", unique_suffix()), &accounts)
            .await
            .expect("auth enabled");
        let harness = CertificateAccess {
            server,
            certificates,
            prefix: unique_namespace(),
        };
        let report = apply_policy(&harness.config("root"), &harness.policy(), false)
            .await
            .expect("root sets the policy up with its certificate");
        assert!(report.is_clean(), "{report:?}");
        Some(harness)
    }

    fn policy(&self) -> AccessPolicy {
        let names = |role: Role| {
            USERS
                .iter()
                .filter(|(r, _)| *r == role)
                .map(|(_, user)| user.to_string())
                .collect()
        };
        AccessPolicy {
            anonymous: AnonymousAccess::None,
            readers: names(Role::Reader),
            registrars: names(Role::Registrar),
            writers: names(Role::Writer),
        }
    }

    /// A session presenting `name`'s certificate, and no password.
    fn config(&self, name: &str) -> EtcdConfig {
        let (cert, key): (PathBuf, PathBuf) = self.certificates.client(name);
        EtcdConfig::new([self.server.endpoint()])
            .with_prefix(&self.prefix)
            .expect("valid prefix")
            .with_tls_files(&self.certificates.ca(), Some(&cert), Some(&key))
            .expect("readable certificates")
    }
}

#[async_trait]
impl AccessHarness for CertificateAccess {
    fn name(&self) -> &str {
        "etcd (client certificates)"
    }

    fn anonymous(&self) -> AnonymousAccess {
        AnonymousAccess::None
    }

    /// Without a role: a valid certificate for a name etcd has no user for
    /// (a connection without any certificate is refused by TLS itself).
    async fn connect(&self, role: Option<Role>) -> kingpin_api::Result<Arc<dyn Coordinator>> {
        let name = match role {
            Some(role) => USERS
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, user)| *user)
                .expect("a user per role"),
            None => STRANGER,
        };
        Ok(Arc::new(EtcdCoordinator::connect(self.config(name)).await?))
    }

    fn secrets(&self) -> Vec<String> {
        // The private keys: no error may quote one.
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

async fn harness(case: &str) -> Option<CertificateAccess> {
    CertificateAccess::new(case).await
}

access_suite!(harness);
