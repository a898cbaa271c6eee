//! A metaconfig: what a monitor must sync for one config or serverset.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ConfigName;
use crate::error::{Error, Result};
use crate::path::NodePath;

/// The suffix that marks a dependency name (`web.dep`), as in KingPin.
pub const DEPENDENCY_SUFFIX: &str = ".dep";
/// The first component of every serverset name: `discovery.<service>.<env>`.
pub const SERVERSET_PREFIX: &str = "discovery";

/// What a metaconfig describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetaConfigKind {
    /// A config of the [`ConfigStore`](crate::ConfigStore): the monitor
    /// writes its content.
    Config,
    /// A serverset: the monitor writes its members as `host:port` lines.
    Serverset,
    /// A service's environments (`environments.<service>`): the monitor
    /// writes the view its host is associated with.
    Environment,
}

impl fmt::Display for MetaConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetaConfigKind::Config => "config",
            MetaConfigKind::Serverset => "serverset",
            MetaConfigKind::Environment => "environment",
        })
    }
}

/// One metaconfig record (design.md §5): a name, its kind, the coordinator
/// node to watch, the local file to write, and an optional random delay
/// that spreads the fetches of many hosts.
///
/// It holds no command: reload hooks are configured on each host, never
/// carried by remote data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaConfig {
    /// The config or serverset name.
    pub name: ConfigName,
    /// Config or serverset.
    pub kind: MetaConfigKind,
    /// The coordinator node the monitor watches.
    pub node_path: NodePath,
    /// The local file name, relative to the monitor's config or serverset
    /// directory: the name itself.
    pub file_name: String,
    /// The longest random delay, in milliseconds, before a host fetches a
    /// change (0: fetch at once).
    pub max_random_delay_ms: u64,
}

/// The stored form; parsed into [`MetaConfig`] only after validation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMetaConfig {
    name: String,
    kind: MetaConfigKind,
    node_path: String,
    file_name: String,
    #[serde(default)]
    max_random_delay_ms: u64,
}

impl MetaConfig {
    /// The metaconfig of config `name`.
    pub fn config(name: ConfigName) -> Result<Self> {
        if is_dependency(&name) || name.as_str().starts_with("discovery.") {
            return Err(Error::invalid(format!(
                "{name} cannot be a config name: names ending in {DEPENDENCY_SUFFIX} are dependencies and names under {SERVERSET_PREFIX}. are serversets"
            )));
        }
        if name.as_str().split('.').count() == 2 && name.as_str().starts_with("environments.") {
            return Err(Error::invalid(format!(
                "{name} cannot be a config name: environments.<service> names a service's environments"
            )));
        }
        Ok(MetaConfig {
            node_path: name.node_path().clone(),
            file_name: name.file_name().to_owned(),
            name,
            kind: MetaConfigKind::Config,
            max_random_delay_ms: 0,
        })
    }

    /// The metaconfig of the serverset of `service` in `env`:
    /// `discovery.<service>.<env>` at `/discovery/<service>/<env>`.
    pub fn serverset(service: &str, env: &str) -> Result<Self> {
        for (what, part) in [("service", service), ("environment", env)] {
            if part.is_empty() || part.contains('.') {
                return Err(Error::invalid(format!(
                    "serverset {what} {part:?} must be one non-empty name component, without '.'"
                )));
            }
        }
        let name = ConfigName::parse(&format!("{SERVERSET_PREFIX}.{service}.{env}"))?;
        Ok(MetaConfig {
            node_path: name.node_path().clone(),
            file_name: name.file_name().to_owned(),
            name,
            kind: MetaConfigKind::Serverset,
            max_random_delay_ms: 0,
        })
    }

    /// The metaconfig of `service`'s environments: `environments.<service>`,
    /// watching the service's node; each host's monitor writes the view of
    /// the environment the host is associated with (the root's when none)
    /// to the file `environments.<service>`.
    pub fn environment(service: &str) -> Result<Self> {
        let service = crate::environment::ServiceName::parse(service)?;
        let name = service.metaconfig_name()?;
        Ok(MetaConfig {
            node_path: service.node_path()?,
            file_name: name.file_name().to_owned(),
            name,
            kind: MetaConfigKind::Environment,
            max_random_delay_ms: 0,
        })
    }

    /// The service of an environment metaconfig.
    pub fn environment_service(&self) -> Option<crate::environment::ServiceName> {
        if self.kind != MetaConfigKind::Environment {
            return None;
        }
        let service = self.name.as_str().strip_prefix("environments.")?;
        crate::environment::ServiceName::parse(service).ok()
    }

    /// Sets the longest random delay before a host fetches a change.
    pub fn with_max_random_delay_ms(mut self, delay_ms: u64) -> Self {
        self.max_random_delay_ms = delay_ms;
        self
    }

    /// The record as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = StoredMetaConfig {
            name: self.name.to_string(),
            kind: self.kind,
            node_path: self.node_path.to_string(),
            file_name: self.file_name.clone(),
            max_random_delay_ms: self.max_random_delay_ms,
        };
        // Strings and integers always serialize.
        serde_json::to_vec_pretty(&stored).unwrap_or_default()
    }

    /// Parses and validates a stored record. The name, path and file name
    /// come from remote data and become a watch and a local file, so each
    /// is checked: the path and file must be the ones the name maps to.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let stored: StoredMetaConfig = serde_json::from_slice(json)
            .map_err(|e| Error::invalid(format!("metaconfig record is not valid: {e}")))?;
        let name = ConfigName::parse(&stored.name)?;
        let expected = match stored.kind {
            MetaConfigKind::Config => MetaConfig::config(name)?,
            MetaConfigKind::Serverset => {
                let parts: Vec<&str> = name.as_str().split('.').collect();
                match parts.as_slice() {
                    [SERVERSET_PREFIX, service, env] => MetaConfig::serverset(service, env)?,
                    _ => {
                        return Err(Error::invalid(format!(
                        "metaconfig {name}: a serverset name is {SERVERSET_PREFIX}.<service>.<env>"
                    )))
                    }
                }
            }
            MetaConfigKind::Environment => {
                match name.as_str().split('.').collect::<Vec<_>>().as_slice() {
                    [crate::environment::ENVIRONMENTS_PREFIX, service] => {
                        MetaConfig::environment(service)?
                    }
                    _ => {
                        return Err(Error::invalid(format!(
                            "metaconfig {name}: an environment name is environments.<service>"
                        )))
                    }
                }
            }
        };
        if stored.node_path != expected.node_path.as_str() || stored.file_name != expected.file_name
        {
            return Err(Error::invalid(format!(
                "metaconfig {}: node path {:?} and file name {:?} do not match the name (expected {} and {})",
                expected.name, stored.node_path, stored.file_name, expected.node_path, expected.file_name
            )));
        }
        Ok(expected.with_max_random_delay_ms(stored.max_random_delay_ms))
    }
}

/// Whether `name` names a dependency (ends in `.dep`).
pub fn is_dependency(name: &ConfigName) -> bool {
    name.as_str().ends_with(DEPENDENCY_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_checked() {
        let m = MetaConfig::config(ConfigName::parse("config.manageddata.spam.blacklist").unwrap())
            .unwrap()
            .with_max_random_delay_ms(500);
        assert_eq!(MetaConfig::from_json(&m.to_json()).unwrap(), m);
        let s = MetaConfig::serverset("web", "prod").unwrap();
        assert_eq!(s.node_path.as_str(), "/discovery/web/prod");
        assert_eq!(MetaConfig::from_json(&s.to_json()).unwrap(), s);

        let forged = r#"{"name":"../../etc/passwd","kind":"config","node_path":"/etc/passwd","file_name":"../../etc/passwd"}"#;
        assert!(MetaConfig::from_json(forged.as_bytes()).is_err());
        let forged = r#"{"name":"a.b","kind":"config","node_path":"/etc","file_name":"a.b"}"#;
        assert!(MetaConfig::from_json(forged.as_bytes()).is_err());
        let with_command = r#"{"name":"a.b","kind":"config","node_path":"/a/b","file_name":"a.b","command":"rm -rf /"}"#;
        assert!(
            MetaConfig::from_json(with_command.as_bytes()).is_err(),
            "no command travels through remote data"
        );
    }

    #[test]
    fn names_of_the_wrong_kind_are_refused() {
        assert!(MetaConfig::config(ConfigName::parse("web.dep").unwrap()).is_err());
        assert!(MetaConfig::config(ConfigName::parse("discovery.a.b").unwrap()).is_err());
        assert!(MetaConfig::serverset("a.b", "prod").is_err());
        assert!(MetaConfig::serverset("Web", "prod").is_err());
        assert!(MetaConfig::environment("a.b").is_err());
    }

    #[test]
    fn environment_records_round_trip() {
        let e = MetaConfig::environment("web").unwrap();
        assert_eq!(e.name.as_str(), "environments.web");
        assert_eq!(e.node_path.as_str(), "/environments/web");
        assert_eq!(MetaConfig::from_json(&e.to_json()).unwrap(), e);
        assert_eq!(e.environment_service().unwrap().as_str(), "web");
        let forged = r#"{"name":"environments.web.views","kind":"environment","node_path":"/environments/web/views","file_name":"environments.web.views"}"#;
        assert!(MetaConfig::from_json(forged.as_bytes()).is_err());
    }
}
