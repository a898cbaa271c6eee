//! Connection settings, from a `zk://` URL and the environment.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use kingpin_api::{CoordinatorScheme, CoordinatorUrl, Error, Result, DEFAULT_MAX_DATA_SIZE};

use crate::acl::AclMode;

/// Environment variable holding `user:password` for ZooKeeper digest auth.
pub const DIGEST_ENV: &str = "KINGPIN_ZK_DIGEST";
/// A PEM file of the CA(s) that sign the servers' certificates: setting it
/// connects to every host with TLS (the servers' `secureClientPort`).
pub const CACERT_ENV: &str = "KINGPIN_ZK_CACERT";
/// A PEM client certificate: with ZooKeeper's x509 auth provider its
/// subject (`CN=…`) is this process's `x509:` identity. Needs [`KEY_ENV`].
pub const CERT_ENV: &str = "KINGPIN_ZK_CERT";
/// The PEM private key of [`CERT_ENV`].
pub const KEY_ENV: &str = "KINGPIN_ZK_KEY";

/// TLS to ZooKeeper: the CA to trust and, for x509 identities, a client
/// certificate with its key (PEM).
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) ca: String,
    pub(crate) identity: Option<(String, String)>,
}

const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach a ZooKeeper ensemble.
#[derive(Clone)]
pub struct ZooKeeperConfig {
    pub(crate) hosts: Vec<String>,
    pub(crate) chroot: String,
    pub(crate) session_timeout: Duration,
    pub(crate) connection_timeout: Option<Duration>,
    pub(crate) digest: Option<String>,
    pub(crate) tls: Option<Tls>,
    pub(crate) acl_mode: AclMode,
    pub(crate) max_data_size: usize,
}

impl ZooKeeperConfig {
    /// A config for `hosts` (`host:port` each), no chroot, a 10 s session.
    pub fn new(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ZooKeeperConfig {
            hosts: hosts.into_iter().map(Into::into).collect(),
            chroot: String::new(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connection_timeout: None,
            digest: None,
            tls: None,
            acl_mode: AclMode::Auto,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        }
    }

    /// Reads `zk://h1:2181,h2:2181/chroot?session_timeout=10s&connection_timeout=2s&acl=policy`,
    /// digest credentials from `KINGPIN_ZK_DIGEST` when set, and TLS from
    /// `KINGPIN_ZK_CACERT` and (for an x509 identity) `KINGPIN_ZK_CERT` /
    /// `KINGPIN_ZK_KEY`, each a PEM file.
    ///
    /// `acl` chooses the ACL of the nodes this process creates (see
    /// [`AclMode`]): `auto` (the default), `policy`, `open` or `creator`.
    pub fn from_url(url: &CoordinatorUrl) -> Result<Self> {
        if url.scheme() != CoordinatorScheme::ZooKeeper {
            return Err(Error::invalid(format!("{url} is not a zk:// URL")));
        }
        url.reject_unknown_options(&["session_timeout", "connection_timeout", "acl"])?;
        let mut config =
            ZooKeeperConfig::new(url.hosts().iter().cloned()).with_chroot(url.path())?;
        if let Some(t) = url.duration_option("session_timeout")? {
            config.session_timeout = t;
        }
        config.connection_timeout = url.duration_option("connection_timeout")?;
        if let Some(mode) = url.options().get("acl") {
            config.acl_mode = AclMode::parse(mode)?;
        }
        if let Ok(digest) = std::env::var(DIGEST_ENV) {
            config = config.with_digest(digest)?;
        }
        let file = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
        match (file(CACERT_ENV), file(CERT_ENV), file(KEY_ENV)) {
            (None, None, None) => {}
            (Some(ca), cert, key) => {
                config = config.with_tls_files(
                    ca.as_ref(),
                    cert.as_deref().map(Path::new),
                    key.as_deref().map(Path::new),
                )?
            }
            (None, _, _) => {
                return Err(Error::invalid(format!(
                    "{CERT_ENV} and {KEY_ENV} need {CACERT_ENV}: the CA that signs the \
                     servers' certificates"
                )))
            }
        }
        config.check_acl_mode()?;
        Ok(config)
    }

    /// TLS to every host, trusting the CA in `ca` (PEM), with a client
    /// certificate and its key (PEM files; both or neither) for an x509
    /// identity.
    pub fn with_tls_files(
        self,
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self> {
        let pem = kingpin_api::PemFiles::read(ca, cert, key, CERT_ENV, KEY_ENV)?;
        Ok(self.with_tls(pem.ca, pem.identity))
    }

    /// TLS to every host, trusting `ca_pem`, with a client certificate and
    /// its private key (PEM) for an x509 identity.
    pub fn with_tls(mut self, ca_pem: String, identity: Option<(String, String)>) -> Self {
        self.tls = Some(Tls {
            ca: ca_pem,
            identity,
        });
        self
    }

    /// Confines every path under `chroot` (created if missing).
    pub fn with_chroot(mut self, chroot: &str) -> Result<Self> {
        let chroot = chroot.trim_end_matches('/');
        if !chroot.is_empty() {
            kingpin_api::NodePath::parse(chroot)?;
        }
        self.chroot = chroot.to_owned();
        Ok(self)
    }

    /// Session timeout requested from the server (it may clamp it).
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Digest auth as `user:password`: the identity this process
    /// authenticates as. Without an access policy in the namespace, nodes
    /// created are then readable and writable only by that identity
    /// (ZooKeeper's `creator_all` ACL); with one, they get the policy's ACLs.
    pub fn with_digest(mut self, user_password: impl Into<String>) -> Result<Self> {
        let digest = user_password.into();
        match digest.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {}
            _ => {
                return Err(Error::invalid(format!(
                "ZooKeeper digest credentials must be user:password (from {DIGEST_ENV} or config)"
            )))
            }
        }
        self.digest = Some(digest);
        Ok(self)
    }

    /// How nodes this process creates get their ACLs (default
    /// [`AclMode::Auto`]).
    pub fn with_acl_mode(mut self, mode: AclMode) -> Result<Self> {
        self.acl_mode = mode;
        self.check_acl_mode()?;
        Ok(self)
    }

    /// Whether this process presents an identity (digest or certificate).
    pub(crate) fn has_identity(&self) -> bool {
        self.digest.is_some() || self.tls.as_ref().is_some_and(|t| t.identity.is_some())
    }

    fn check_acl_mode(&self) -> Result<()> {
        if self.acl_mode == AclMode::Creator && !self.has_identity() {
            return Err(Error::invalid(format!(
                "acl=creator needs an identity to create nodes for: set {DIGEST_ENV} or \
                 {CERT_ENV}"
            )));
        }
        Ok(())
    }

    /// The digest identity (`user:<base64 sha1>`) this process
    /// authenticates as, if any: what an access policy names.
    pub(crate) fn digest_identity(&self) -> Option<String> {
        let (user, password) = self.digest.as_ref()?.split_once(':')?;
        Some(crate::acl::digest_identity(user, password))
    }

    /// Payload limit (default [`DEFAULT_MAX_DATA_SIZE`]); must not exceed the
    /// servers' `jute.maxbuffer`.
    pub fn with_max_data_size(mut self, limit: usize) -> Self {
        self.max_data_size = limit;
        self
    }

    /// The connect string without the chroot.
    pub(crate) fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

impl fmt::Debug for ZooKeeperConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperConfig")
            .field("hosts", &self.hosts)
            .field("chroot", &self.chroot)
            .field("session_timeout", &self.session_timeout)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .field(
                "tls",
                &self.tls.as_ref().map(|tls| match tls.identity {
                    Some(_) => "with a client certificate",
                    None => "server certificate only",
                }),
            )
            .field("acl_mode", &self.acl_mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_url_options_and_hides_credentials() {
        let url = CoordinatorUrl::parse("zk://a:2181,b:2181/kp?session_timeout=4s").unwrap();
        let config = ZooKeeperConfig::from_url(&url)
            .unwrap()
            .with_digest("u:secret")
            .unwrap();
        assert_eq!(config.connect_string(), "a:2181,b:2181");
        assert_eq!(config.chroot, "/kp");
        assert_eq!(config.session_timeout, Duration::from_secs(4));
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(config.acl_mode, AclMode::Auto);
        let bad = CoordinatorUrl::parse("zk://a:2181/kp?sesion_timeout=4s").unwrap();
        assert!(ZooKeeperConfig::from_url(&bad).is_err());
        assert!(ZooKeeperConfig::new(["a:1"]).with_digest("u").is_err());
        assert!(ZooKeeperConfig::new(["a:1"]).with_digest("u:").is_err());
    }

    #[test]
    fn acl_modes_come_from_the_url() {
        let url = CoordinatorUrl::parse("zk://a:2181/kp?acl=policy").unwrap();
        let config = ZooKeeperConfig::from_url(&url).unwrap();
        assert_eq!(config.acl_mode, AclMode::Policy);
        let bad = CoordinatorUrl::parse("zk://a:2181/kp?acl=everyone").unwrap();
        let err = ZooKeeperConfig::from_url(&bad).unwrap_err();
        assert!(
            err.to_string().contains("auto, policy, open or creator"),
            "{err}"
        );
        let creator = ZooKeeperConfig::new(["a:1"]).with_acl_mode(AclMode::Creator);
        assert!(creator.is_err());
        let config = ZooKeeperConfig::new(["a:1"]).with_digest("u:pw").unwrap();
        assert!(config.with_acl_mode(AclMode::Creator).is_ok());
    }
}
