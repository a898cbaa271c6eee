//! The monitor's local settings: a TOML file on the host, never remote
//! data. Reload hooks are configured only here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kingpin_api::ConfigName;
use serde::Deserialize;

/// KingPin's directory for config files.
pub const DEFAULT_CONFIG_DIR: &str = "/var/config";
/// KingPin's directory for serverset files.
pub const DEFAULT_SERVERSET_DIR: &str = "/var/serverset";
/// The admin port, on loopback only unless configured otherwise.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9898";

/// A settings error: what was wrong, in which setting.
#[derive(Debug, thiserror::Error)]
#[error("monitor settings: {0}")]
pub struct SettingsError(String);

/// A command run after a file changes. Only the host's own settings name
/// hooks; nothing from the coordinator or the blob store is executed.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Which config or serverset names it applies to (a glob:
    /// `config.manageddata.spam.*`).
    pub names: glob::Pattern,
    /// The program and its arguments, run directly (no shell). It gets
    /// `KINGPIN_NAME`, `KINGPIN_FILE` and `KINGPIN_VERSION` in its
    /// environment.
    pub command: Vec<String>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

/// Everything the monitor needs to know.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Coordinator URL (`zk://…`, `etcd://…`, `sqlite://…`).
    pub coordinator: String,
    /// Blob store URL (`s3://…`, `file://…`).
    pub blobstore: String,
    /// The dependency this host subscribes to (`base.dep` is added when it
    /// exists).
    pub dependency: ConfigName,
    /// Where config files go.
    pub config_dir: PathBuf,
    /// Where serverset files go.
    pub serverset_dir: PathBuf,
    /// Where the admin HTTP server listens; `None` for none.
    pub admin_addr: Option<SocketAddr>,
    /// How often every subscribed entry is re-checked, to heal anything a
    /// watch missed.
    pub reconcile_interval: Duration,
    /// A random extra delay up to this, so hosts do not reconcile in step.
    pub reconcile_jitter: Duration,
    /// Hooks, in order.
    pub hooks: Vec<Hook>,
    /// Refuse a serverset update that removes more than this fraction of
    /// its members at once (an update that empties a serverset is always
    /// refused). `None`: only emptying is refused.
    pub serverset_max_shrink: Option<f64>,
    /// Write a refused serverset update once the same membership has
    /// been refused this long (a decommissioned service's empty serverset
    /// stops being held after it); `None`: only an operator's acceptance
    /// (`kingpin serverset accept-next`) lets it through.
    pub serverset_accept_refused_after: Option<Duration>,
    /// This host's identity for environment associations; `None`:
    /// `$KINGPIN_HOST`, else the FQDN (the rule of
    /// `kingpin_api::environment::local_host_id`).
    pub host: Option<String>,
    /// Whether to report what this host has synced (name, version, last
    /// sync, last error) in the ephemeral node `/status/<host>`, for the
    /// console's "who has which version". Off by default.
    pub report_status: bool,
    /// At most one status report per this interval.
    pub status_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookFile {
    names: String,
    command: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    coordinator: String,
    blobstore: String,
    dependency: String,
    #[serde(default)]
    config_dir: Option<PathBuf>,
    #[serde(default)]
    serverset_dir: Option<PathBuf>,
    #[serde(default)]
    admin_addr: Option<String>,
    #[serde(default)]
    reconcile_interval: Option<String>,
    #[serde(default)]
    reconcile_jitter: Option<String>,
    #[serde(default)]
    hooks: Vec<HookFile>,
    #[serde(default)]
    serverset_max_shrink: Option<f64>,
    #[serde(default)]
    serverset_accept_refused_after: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    report_status: bool,
    #[serde(default)]
    status_interval: Option<String>,
}

fn duration(what: &str, text: Option<&str>, default: Duration) -> Result<Duration, SettingsError> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| SettingsError(format!("{what} = {text:?} is not a duration: {e}"))),
    }
}

impl MonitorSettings {
    /// Settings with KingPin's defaults: `/var/config`, `/var/serverset`,
    /// admin on 127.0.0.1:9898, reconcile every 5 minutes plus up to 30 s.
    pub fn new(
        coordinator: impl Into<String>,
        blobstore: impl Into<String>,
        dependency: ConfigName,
    ) -> Self {
        MonitorSettings {
            coordinator: coordinator.into(),
            blobstore: blobstore.into(),
            dependency,
            config_dir: PathBuf::from(DEFAULT_CONFIG_DIR),
            serverset_dir: PathBuf::from(DEFAULT_SERVERSET_DIR),
            admin_addr: DEFAULT_ADMIN_ADDR.parse().ok(),
            reconcile_interval: Duration::from_secs(300),
            reconcile_jitter: Duration::from_secs(30),
            hooks: Vec::new(),
            serverset_max_shrink: None,
            serverset_accept_refused_after: None,
            host: None,
            report_status: false,
            status_interval: Duration::from_secs(30),
        }
    }

    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| SettingsError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML settings.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        let file: SettingsFile = toml::from_str(text).map_err(|e| SettingsError(e.to_string()))?;
        let dependency = ConfigName::parse(&file.dependency)
            .map_err(|e| SettingsError(format!("dependency: {}", e.message())))?;
        if !kingpin_api::metaconfig::is_dependency(&dependency) {
            return Err(SettingsError(format!(
                "dependency = {:?} must name a dependency (ending in .dep)",
                file.dependency
            )));
        }
        let mut settings = MonitorSettings::new(file.coordinator, file.blobstore, dependency);
        if let Some(dir) = file.config_dir {
            settings.config_dir = dir;
        }
        if let Some(dir) = file.serverset_dir {
            settings.serverset_dir = dir;
        }
        settings.admin_addr = match file.admin_addr.as_deref() {
            None => settings.admin_addr,
            Some("" | "off") => None,
            Some(addr) => Some(addr.parse().map_err(|e| {
                SettingsError(format!("admin_addr = {addr:?} is not an address: {e}"))
            })?),
        };
        settings.reconcile_interval = duration(
            "reconcile_interval",
            file.reconcile_interval.as_deref(),
            settings.reconcile_interval,
        )?;
        settings.reconcile_jitter = duration(
            "reconcile_jitter",
            file.reconcile_jitter.as_deref(),
            settings.reconcile_jitter,
        )?;
        settings.report_status = file.report_status;
        settings.status_interval = duration(
            "status_interval",
            file.status_interval.as_deref(),
            settings.status_interval,
        )?;
        if settings.status_interval.is_zero() {
            return Err(SettingsError(
                "status_interval must be longer than 0s".to_owned(),
            ));
        }
        if let Some(host) = file.host {
            kingpin_api::environment::HostId::parse(&host)
                .map_err(|e| SettingsError(format!("host: {}", e.message())))?;
            settings.host = Some(host);
        }
        if let Some(limit) = file.serverset_max_shrink {
            if !(0.0..1.0).contains(&limit) {
                return Err(SettingsError(format!(
                    "serverset_max_shrink = {limit} must be a fraction in [0, 1): the share of a serverset's members one update may remove (emptying is always refused)"
                )));
            }
            settings.serverset_max_shrink = Some(limit);
        }
        if let Some(text) = file.serverset_accept_refused_after.as_deref() {
            let hold = duration("serverset_accept_refused_after", Some(text), Duration::ZERO)?;
            if hold.is_zero() {
                return Err(SettingsError(
                    "serverset_accept_refused_after must be longer than 0 (leave it out to hold refusals until an operator accepts)".to_owned(),
                ));
            }
            settings.serverset_accept_refused_after = Some(hold);
        }
        for hook in file.hooks {
            let names = glob::Pattern::new(&hook.names).map_err(|e| {
                SettingsError(format!("hook names = {:?} is not a glob: {e}", hook.names))
            })?;
            if hook.command.is_empty() {
                return Err(SettingsError(format!(
                    "hook for {:?} has an empty command",
                    hook.names
                )));
            }
            let timeout = duration(
                "hook timeout",
                hook.timeout.as_deref(),
                Duration::from_secs(30),
            )?;
            settings.hooks.push(Hook {
                names,
                command: hook.command,
                timeout,
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let settings = MonitorSettings::from_toml(
            r#"
            coordinator = "zk://127.0.0.1:2181/kingpin"
            blobstore = "s3://configs/kingpin"
            dependency = "web.dep"
            config_dir = "/tmp/config"
            admin_addr = "127.0.0.1:19898"
            reconcile_interval = "1m"
            serverset_max_shrink = 0.5
            serverset_accept_refused_after = "30m"
            report_status = true
            status_interval = "15s"
            [[hooks]]
            names = "config.manageddata.spam.*"
            command = ["/bin/true", "--reload"]
            timeout = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(settings.config_dir, PathBuf::from("/tmp/config"));
        assert_eq!(settings.serverset_dir, PathBuf::from(DEFAULT_SERVERSET_DIR));
        assert_eq!(settings.reconcile_interval, Duration::from_secs(60));
        assert_eq!(settings.serverset_max_shrink, Some(0.5));
        assert_eq!(
            settings.serverset_accept_refused_after,
            Some(Duration::from_secs(1800))
        );
        assert!(settings.report_status);
        assert_eq!(settings.status_interval, Duration::from_secs(15));
        assert_eq!(settings.hooks[0].timeout, Duration::from_secs(5));
        assert!(settings.hooks[0]
            .names
            .matches("config.manageddata.spam.blacklist"));
    }

    #[test]
    fn mistakes_are_named() {
        let base = "coordinator = \"zk://h/c\"\nblobstore = \"file:///x\"\n";
        for (extra, complaint) in [
            ("dependency = \"web\"", "ending in .dep"),
            ("dependency = \"Web.dep\"", "dependency"),
            (
                "dependency = \"w.dep\"\nreconcile_interval = \"soon\"",
                "reconcile_interval",
            ),
            ("dependency = \"w.dep\"\ntypo = 1", "typo"),
            (
                "dependency = \"w.dep\"\nserverset_max_shrink = 1.5",
                "serverset_max_shrink",
            ),
            (
                "dependency = \"w.dep\"\n[[hooks]]\nnames = \"*\"\ncommand = []",
                "empty command",
            ),
        ] {
            let err = MonitorSettings::from_toml(&format!("{base}{extra}")).unwrap_err();
            assert!(err.to_string().contains(complaint), "{err}");
        }
    }
}
