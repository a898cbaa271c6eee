//! Coordinator URLs: `memory://`, `zk://h1:2181,h2:2181/chroot`,
//! `etcd://h1:2379/prefix`, each with optional `?key=value` options.
//!
//! The URL is split here; each backend reads its own options from it (and
//! rejects the ones it does not know), the way a builder reads typed keys.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The backends a coordinator URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CoordinatorScheme {
    /// `memory://`: in this process only.
    Memory,
    /// `zk://`: ZooKeeper.
    ZooKeeper,
    /// `etcd://`: etcd v3.
    Etcd,
    /// `sqlite://path/to/kingpin.db`: one host, many processes.
    Sqlite,
}

impl CoordinatorScheme {
    /// The URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            CoordinatorScheme::Memory => "memory",
            CoordinatorScheme::ZooKeeper => "zk",
            CoordinatorScheme::Etcd => "etcd",
            CoordinatorScheme::Sqlite => "sqlite",
        }
    }
}

/// A parsed coordinator URL. Its `Display` is safe to log: URLs never carry
/// credentials (they are refused at parse time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorUrl {
    scheme: CoordinatorScheme,
    hosts: Vec<String>,
    path: String,
    options: BTreeMap<String, String>,
}

impl CoordinatorUrl {
    /// Parses `scheme://host:port,host:port/path?key=value&…`.
    ///
    /// ```
    /// use kingpin_api::{CoordinatorScheme, CoordinatorUrl};
    /// let url = CoordinatorUrl::parse("zk://h1:2181,h2:2181/kingpin?session_timeout=10s")?;
    /// assert_eq!(url.scheme(), CoordinatorScheme::ZooKeeper);
    /// assert_eq!(url.hosts(), ["h1:2181", "h2:2181"]);
    /// assert_eq!(url.path(), "/kingpin");
    /// # Ok::<(), kingpin_api::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<Self> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::invalid(format!(
                "coordinator URL {:?} has no scheme; expected memory://, zk:// or etcd://",
                redact(url)
            )));
        };
        let scheme = match scheme {
            "memory" => CoordinatorScheme::Memory,
            "zk" | "zookeeper" => CoordinatorScheme::ZooKeeper,
            "etcd" => CoordinatorScheme::Etcd,
            "sqlite" => CoordinatorScheme::Sqlite,
            other => {
                return Err(Error::invalid(format!(
                    "unknown coordinator scheme {other:?}; expected memory, zk, etcd or sqlite"
                )))
            }
        };
        if scheme == CoordinatorScheme::Sqlite {
            return Self::parse_file_url(scheme, rest);
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(Error::invalid(
                "credentials are not accepted in coordinator URLs, because URLs end up in logs; \
                 use KINGPIN_ZK_DIGEST, or KINGPIN_ETCD_USER and KINGPIN_ETCD_PASSWORD",
            ));
        }
        let hosts: Vec<String> = authority
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        for host in &hosts {
            check_host(host)?;
        }
        if scheme != CoordinatorScheme::Memory && hosts.is_empty() {
            return Err(Error::invalid(format!(
                "coordinator URL {:?} names no host",
                redact(url)
            )));
        }
        let path = path.trim_end_matches('/').to_owned();
        let options = parse_options(query)?;
        Ok(CoordinatorUrl {
            scheme,
            hosts,
            path,
            options,
        })
    }

    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`: no
    /// hosts, the whole rest is a file path (empty for the default).
    fn parse_file_url(scheme: CoordinatorScheme, rest: &str) -> Result<Self> {
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.contains('\0') {
            return Err(Error::invalid("database path contains a NUL byte"));
        }
        let options = parse_options(query)?;
        Ok(CoordinatorUrl {
            scheme,
            hosts: Vec::new(),
            path: path.to_owned(),
            options,
        })
    }

    /// Which backend.
    pub fn scheme(&self) -> CoordinatorScheme {
        self.scheme
    }

    /// `host:port` entries, in order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The path after the hosts (chroot, key prefix), without a trailing
    /// `/`; empty when absent.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// All `?key=value` options.
    pub fn options(&self) -> &BTreeMap<String, String> {
        &self.options
    }

    /// Fails with a clear error if an option is not in `known`.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        for key in self.options.keys() {
            if !known.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "unknown option {key:?} for a {}:// URL; known options: {}",
                    self.scheme.as_str(),
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A duration option such as `session_timeout=10s` (`ms`, `s`, `m`
    /// suffixes; a bare number is milliseconds).
    pub fn duration_option(&self, key: &str) -> Result<Option<Duration>> {
        let Some(value) = self.options.get(key) else {
            return Ok(None);
        };
        parse_duration(value).map(Some).ok_or_else(|| {
            Error::invalid(format!(
                "option {key}={value:?} is not a duration like 500ms, 10s or 2m"
            ))
        })
    }
}

/// Whether a URL option would carry a credential (a secret key, a session or
/// bearer token, a password, an access key id, a SAS, a service account
/// key…), in any letter case. URLs end up in logs, shell histories and
/// process lists, so every kingpin URL refuses such options, whatever the
/// scheme, and points to the environment instead.
///
/// ```
/// assert!(kingpin_api::is_credential_option("AWS_SECRET_ACCESS_KEY"));
/// assert!(kingpin_api::is_credential_option("google_service_account_key"));
/// assert!(!kingpin_api::is_credential_option("region"));
/// ```
pub fn is_credential_option(key: &str) -> bool {
    const MARKS: [&str; 12] = [
        "secret",
        "password",
        "passwd",
        "token",
        "access_key",
        "accesskey",
        "key_id",
        "credential",
        "sas_key",
        "service_account",
        "master_key",
        "digest",
    ];
    let key = key.to_ascii_lowercase();
    MARKS.iter().any(|mark| key.contains(mark)) || key == "sas" || key.ends_with("account_key")
}

fn parse_options(query: Option<&str>) -> Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if is_credential_option(k) {
            return Err(Error::invalid(format!(
                "option {k:?} would put a credential in a coordinator URL, where logs show it; \
                 use KINGPIN_ZK_DIGEST, or KINGPIN_ETCD_USER and KINGPIN_ETCD_PASSWORD"
            )));
        }
        if options.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Error::invalid(format!("option {k:?} is given twice")));
        }
    }
    Ok(options)
}

fn check_host(host: &str) -> Result<()> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
    let valid_port = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    if valid_name && valid_port {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{host:?} is not a valid host[:port]"
        )))
    }
}

fn parse_duration(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "" | "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

/// The scheme and hosts of a URL that failed to parse, with anything that
/// looks like credentials removed, for error messages.
fn redact(url: &str) -> String {
    match url.rfind('@') {
        Some(i) => format!("<credentials>@{}", &url[i + 1..]),
        None => url.to_owned(),
    }
}

impl fmt::Display for CoordinatorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.hosts.join(","),
            self.path
        )?;
        let mut sep = '?';
        for (k, v) in &self.options {
            write!(f, "{sep}{k}={v}")?;
            sep = '&';
        }
        Ok(())
    }
}

impl std::str::FromStr for CoordinatorUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CoordinatorUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parses_each_scheme() {
        let zk = CoordinatorUrl::parse("zk://127.0.0.1:2181,h2:2182/a/b/").unwrap();
        assert_eq!(zk.hosts(), ["127.0.0.1:2181", "h2:2182"]);
        assert_eq!(zk.path(), "/a/b");
        let etcd = CoordinatorUrl::parse("etcd://[::1]:2379/prefix?lease_ttl=5s").unwrap();
        assert_eq!(etcd.scheme(), CoordinatorScheme::Etcd);
        assert_eq!(
            etcd.duration_option("lease_ttl").unwrap(),
            Some(Duration::from_secs(5))
        );
        let db = CoordinatorUrl::parse("sqlite://.kingpin/kingpin.db?session_timeout=3s").unwrap();
        assert_eq!(
            (db.scheme(), db.path()),
            (CoordinatorScheme::Sqlite, ".kingpin/kingpin.db")
        );
        assert_eq!(
            CoordinatorUrl::parse("sqlite:///var/lib/k.db")
                .unwrap()
                .path(),
            "/var/lib/k.db"
        );
        assert_eq!(CoordinatorUrl::parse("sqlite://").unwrap().path(), "");
        let mem = CoordinatorUrl::parse("memory://").unwrap();
        assert_eq!(mem.scheme(), CoordinatorScheme::Memory);
        assert_eq!(zk.to_string(), "zk://127.0.0.1:2181,h2:2182/a/b");
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        let err = CoordinatorUrl::parse("etcd://root:hunter2@h1:2379").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(!err.to_string().contains("hunter2"));
        for bad in [
            "h1:2181",
            "mysql://h",
            "zk://",
            "zk://h:99999",
            "zk://h:0",
            "zk://h/?a=1&a=2",
            "zk://bad host",
        ] {
            assert_eq!(
                CoordinatorUrl::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
        for option in ["password", "PASSWORD", "Digest", "etcd_password", "TOKEN"] {
            let err = CoordinatorUrl::parse(&format!("zk://h/?{option}=hunter2")).unwrap_err();
            assert!(err.to_string().contains("credential"), "{option}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let url = CoordinatorUrl::parse("zk://h/?session_timeout=ten").unwrap();
        assert!(url.duration_option("session_timeout").is_err());
        assert!(url.reject_unknown_options(&["chroot"]).is_err());
    }
}
