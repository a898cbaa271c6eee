//! Connection settings, from an `etcd://` URL and the environment.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use kingpin_api::{CoordinatorScheme, CoordinatorUrl, Error, Result, DEFAULT_MAX_DATA_SIZE};

/// Environment variables holding etcd user credentials.
pub const USER_ENV: &str = "KINGPIN_ETCD_USER";
/// See [`USER_ENV`].
pub const PASSWORD_ENV: &str = "KINGPIN_ETCD_PASSWORD";
/// A PEM file of the CA(s) that sign etcd's server certificate: setting it
/// (or [`CERT_ENV`]) connects with TLS.
pub const CACERT_ENV: &str = "KINGPIN_ETCD_CACERT";
/// A PEM client certificate: with `--client-cert-auth`, etcd takes its
/// common name as the user. Needs [`KEY_ENV`].
pub const CERT_ENV: &str = "KINGPIN_ETCD_CERT";
/// The PEM private key of [`CERT_ENV`].
pub const KEY_ENV: &str = "KINGPIN_ETCD_KEY";

/// TLS to etcd: the CA to trust and, for certificate auth, a client
/// certificate with its key (PEM).
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) ca: String,
    pub(crate) identity: Option<(String, String)>,
}

const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How to reach an etcd cluster.
#[derive(Clone)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) tls: Option<Tls>,
    pub(crate) max_data_size: usize,
}

impl EtcdConfig {
    /// A config for `endpoints` (`host:port` each), keys under `/kingpin`,
    /// a 10 s lease.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/kingpin".to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            connect_timeout: Duration::from_secs(5),
            credentials: None,
            tls: None,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        }
    }

    /// Reads `etcd://h1:2379,h2:2379/prefix?lease_ttl=10s&connect_timeout=5s`,
    /// credentials from `KINGPIN_ETCD_USER` / `KINGPIN_ETCD_PASSWORD`, and
    /// TLS from `KINGPIN_ETCD_CACERT` and (for certificate auth)
    /// `KINGPIN_ETCD_CERT` / `KINGPIN_ETCD_KEY`, each a PEM file.
    pub fn from_url(url: &CoordinatorUrl) -> Result<Self> {
        if url.scheme() != CoordinatorScheme::Etcd {
            return Err(Error::invalid(format!("{url} is not an etcd:// URL")));
        }
        url.reject_unknown_options(&["lease_ttl", "connect_timeout"])?;
        let mut config = EtcdConfig::new(url.hosts().iter().cloned());
        if !url.path().is_empty() {
            config = config.with_prefix(url.path())?;
        }
        if let Some(ttl) = url.duration_option("lease_ttl")? {
            config = config.with_lease_ttl(ttl)?;
        }
        if let Some(timeout) = url.duration_option("connect_timeout")? {
            config.connect_timeout = timeout;
        }
        match (std::env::var(USER_ENV), std::env::var(PASSWORD_ENV)) {
            (Ok(user), Ok(password)) => config = config.with_credentials(user, password),
            (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
                return Err(Error::invalid(format!(
                    "set both {USER_ENV} and {PASSWORD_ENV}, or neither"
                )))
            }
            _ => {}
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
                    "{CERT_ENV} and {KEY_ENV} need {CACERT_ENV}: the CA that signs etcd's \
                     server certificate"
                )))
            }
        }
        Ok(config)
    }

    /// TLS with the CA in `ca` (PEM) and, for certificate auth, a client
    /// certificate and its key (PEM files; both or neither).
    pub fn with_tls_files(
        self,
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self> {
        let pem = kingpin_api::PemFiles::read(ca, cert, key, CERT_ENV, KEY_ENV)?;
        Ok(self.with_tls(pem.ca, pem.identity))
    }

    /// TLS with the CA `ca_pem` and, for certificate auth, a client
    /// certificate and its private key, both PEM.
    pub fn with_tls(mut self, ca_pem: String, identity: Option<(String, String)>) -> Self {
        self.tls = Some(Tls {
            ca: ca_pem,
            identity,
        });
        self
    }

    /// Keeps every key under `prefix` (an absolute path such as `/kingpin`).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            kingpin_api::NodePath::parse(prefix)?;
        }
        self.prefix = prefix.to_owned();
        Ok(self)
    }

    /// Lease TTL: how long ephemeral nodes outlive a silent client.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Result<Self> {
        if ttl < Duration::from_secs(2) {
            return Err(Error::invalid("lease_ttl must be at least 2s"));
        }
        self.lease_ttl = ttl;
        Ok(self)
    }

    /// User and password for etcd's auth.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Payload limit (default [`DEFAULT_MAX_DATA_SIZE`]); must stay under
    /// the server's `--max-request-bytes`.
    pub fn with_max_data_size(mut self, limit: usize) -> Self {
        self.max_data_size = limit;
        self
    }

    pub(crate) fn endpoints_display(&self) -> String {
        self.endpoints.join(",")
    }
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .field(
                "tls",
                &self.tls.as_ref().map(|tls| match tls.identity {
                    Some(_) => "with a client certificate",
                    None => "server certificate only",
                }),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_url_options_and_hides_credentials() {
        let url = CoordinatorUrl::parse("etcd://a:2379,b:2379/kp?lease_ttl=6s").unwrap();
        let config = EtcdConfig::from_url(&url)
            .unwrap()
            .with_credentials("root", "s3cret");
        assert_eq!(config.prefix, "/kp");
        assert_eq!(config.lease_ttl, Duration::from_secs(6));
        assert!(!format!("{config:?}").contains("s3cret"));
        let short = CoordinatorUrl::parse("etcd://a:2379/kp?lease_ttl=1s").unwrap();
        assert!(EtcdConfig::from_url(&short).is_err());
        let tls = config.with_tls(
            "CA".into(),
            Some(("CERT".into(), "-----BEGIN PRIVATE KEY----- s3cret".into())),
        );
        assert!(!format!("{tls:?}").contains("s3cret"));
        assert!(format!("{tls:?}").contains("with a client certificate"));
    }
}
