//! The console's settings: a TOML file on the host running it.
//!
//! ```toml
//! listen = "127.0.0.1:9900"
//! users_file = "/etc/kingpin/console-users"   # or the two proxy settings
//! # proxy_header = "X-Forwarded-User"
//! # trusted_proxies = ["127.0.0.1/32", "::1/128"]
//! session_key_file = "/var/lib/kingpin/console-session.key"
//! secure_cookies = true                       # behind TLS
//! approvals = ["config.manageddata.payments"]
//!
//! [[grants]]
//! users = ["*"]
//! prefix = ""
//! role = "viewer"
//!
//! [[grants]]
//! users = ["alice"]
//! prefix = "config.manageddata.spam"
//! role = "editor"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::auth::roles::{Grant, Role};

/// Where the console listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9900";

/// A settings error: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("console settings: {0}")]
pub struct SettingsError(pub String);

/// How users are identified.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIn {
    /// Users sign in with a password checked against a users file of
    /// `name:argon2id-hash` lines (see [`crate::hash_password`]).
    UsersFile(PathBuf),
    /// A reverse proxy in front authenticates and names the user in
    /// `header`; the header is believed only from `trusted` addresses.
    Proxy {
        /// The header, e.g. `X-Forwarded-User`.
        header: String,
        /// The proxies' addresses.
        trusted: Vec<IpNet>,
    },
    /// Every request is this user, with the admin role on everything:
    /// `kingpin dev` on a developer's machine.
    LocalUser(String),
}

/// Everything the console needs besides its backends.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// How users sign in.
    pub sign_in: SignIn,
    /// Who may do what, by name prefix.
    pub grants: Vec<Grant>,
    /// Name prefixes whose changes need another user's approval.
    pub approvals: Vec<String>,
    /// The key signing session cookies and CSRF tokens; `None`: a random
    /// key per process (sessions end when it restarts).
    pub session_key_file: Option<PathBuf>,
    /// Mark cookies `Secure` (when the console is reached over TLS).
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_lifetime: Duration,
    /// How often the list of configs (for browsing and search) is re-read.
    pub catalog_refresh: Duration,
    /// How often the hosts' status reports are re-read.
    pub status_refresh: Duration,
}

impl ConsoleSettings {
    /// Settings for one local user with every right (`kingpin dev`).
    pub fn local(user: impl Into<String>) -> Self {
        ConsoleSettings {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 9900).into()),
            sign_in: SignIn::LocalUser(user.into()),
            grants: Vec::new(),
            approvals: Vec::new(),
            session_key_file: None,
            secure_cookies: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            catalog_refresh: Duration::from_secs(10),
            status_refresh: Duration::from_secs(10),
        }
    }

    /// Settings signing users in from a users file, with `grants`.
    pub fn with_users_file(path: impl Into<PathBuf>, grants: Vec<Grant>) -> Self {
        ConsoleSettings {
            sign_in: SignIn::UsersFile(path.into()),
            grants,
            ..Self::local("")
        }
    }

    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| SettingsError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML settings. Exactly one of `users_file` and
    /// `proxy_header` (with `trusted_proxies`) must be set.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        let file: SettingsFile = toml::from_str(text).map_err(|e| SettingsError(e.to_string()))?;
        let sign_in = match (file.users_file, file.proxy_header) {
            (Some(path), None) => SignIn::UsersFile(path),
            (None, Some(header)) => {
                if file.trusted_proxies.is_empty() {
                    return Err(SettingsError(
                        "proxy_header needs trusted_proxies: the addresses the header is believed from".into(),
                    ));
                }
                let trusted = file
                    .trusted_proxies
                    .iter()
                    .map(|t| parse_net(t))
                    .collect::<Result<_, _>>()?;
                SignIn::Proxy { header, trusted }
            }
            (Some(_), Some(_)) => {
                return Err(SettingsError(
                    "set users_file or proxy_header, not both".into(),
                ))
            }
            (None, None) => {
                return Err(SettingsError(
                    "set users_file (passwords) or proxy_header with trusted_proxies: the console does not run without sign-in".into(),
                ))
            }
        };
        let mut settings = ConsoleSettings::local("");
        settings.sign_in = sign_in;
        if let Some(listen) = file.listen {
            settings.listen = listen.parse().map_err(|e| {
                SettingsError(format!("listen = {listen:?} is not an address: {e}"))
            })?;
        }
        for grant in file.grants {
            let role = Role::parse(&grant.role).ok_or_else(|| {
                SettingsError(format!(
                    "grant role = {:?} is not one of viewer, editor, approver, admin",
                    grant.role
                ))
            })?;
            if grant.users.is_empty() {
                return Err(SettingsError(format!(
                    "the {} grant on {:?} names no users",
                    grant.role, grant.prefix
                )));
            }
            settings.grants.push(Grant {
                users: grant.users,
                prefix: prefix(&grant.prefix)?,
                role,
            });
        }
        settings.approvals = file
            .approvals
            .iter()
            .map(|p| prefix(p))
            .collect::<Result<_, _>>()?;
        settings.session_key_file = file.session_key_file;
        settings.secure_cookies = file.secure_cookies;
        for (what, text, slot) in [
            (
                "session_lifetime",
                file.session_lifetime,
                &mut settings.session_lifetime,
            ),
            (
                "catalog_refresh",
                file.catalog_refresh,
                &mut settings.catalog_refresh,
            ),
            (
                "status_refresh",
                file.status_refresh,
                &mut settings.status_refresh,
            ),
        ] {
            if let Some(text) = text {
                *slot = humantime::parse_duration(&text).map_err(|e| {
                    SettingsError(format!("{what} = {text:?} is not a duration: {e}"))
                })?;
                if slot.is_zero() {
                    return Err(SettingsError(format!("{what} must be longer than 0s")));
                }
            }
        }
        Ok(settings)
    }
}

fn parse_net(text: &str) -> Result<IpNet, SettingsError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            SettingsError(format!(
                "trusted_proxies entry {text:?} is not an address or CIDR range"
            ))
        })
}

/// A name prefix: empty (everything) or config name components.
fn prefix(text: &str) -> Result<String, SettingsError> {
    let trimmed = text.trim_end_matches(['.', '*']);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    kingpin_api::ConfigName::parse(trimmed)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| SettingsError(format!("prefix {text:?}: {}", e.message())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    users: Vec<String>,
    #[serde(default)]
    prefix: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    listen: Option<String>,
    users_file: Option<PathBuf>,
    proxy_header: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    grants: Vec<GrantFile>,
    #[serde(default)]
    approvals: Vec<String>,
    session_key_file: Option<PathBuf>,
    #[serde(default)]
    secure_cookies: bool,
    session_lifetime: Option<String>,
    catalog_refresh: Option<String>,
    status_refresh: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let settings = ConsoleSettings::from_toml(
            r#"
            listen = "127.0.0.1:19900"
            users_file = "/etc/kingpin/console-users"
            approvals = ["config.manageddata.payments.*"]
            catalog_refresh = "5s"
            [[grants]]
            users = ["*"]
            role = "viewer"
            [[grants]]
            users = ["alice"]
            prefix = "config.manageddata.spam"
            role = "editor"
            "#,
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 19900);
        assert_eq!(settings.approvals, ["config.manageddata.payments"]);
        assert_eq!(settings.grants[1].role, Role::Editor);
        assert_eq!(settings.catalog_refresh, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, complaint) in [
            ("", "does not run without sign-in"),
            ("users_file = \"/u\"\nproxy_header = \"X\"", "not both"),
            ("proxy_header = \"X-User\"", "trusted_proxies"),
            (
                "proxy_header = \"X-User\"\ntrusted_proxies = [\"nowhere\"]",
                "nowhere",
            ),
            (
                "users_file = \"/u\"\n[[grants]]\nusers = [\"a\"]\nrole = \"god\"",
                "god",
            ),
            (
                "users_file = \"/u\"\n[[grants]]\nusers = [\"a\"]\nprefix = \"Bad/Prefix\"\nrole = \"viewer\"",
                "Bad/Prefix",
            ),
            ("users_file = \"/u\"\nlisten = \"everywhere\"", "listen"),
            ("users_file = \"/u\"\ntypo = 1", "typo"),
        ] {
            let err = ConsoleSettings::from_toml(text).unwrap_err();
            assert!(err.to_string().contains(complaint), "{text}: {err}");
        }
    }
}
