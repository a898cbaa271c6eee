//! Service names, environment paths and host identities, validated before
//! any I/O, and the configs and nodes they map to.

use std::fmt;

use crate::config::ConfigName;
use crate::error::{Error, Result};
use crate::path::NodePath;

/// Where every service's environments live in the coordinator.
pub const ENVIRONMENTS_ROOT: &str = "/environments";
/// The first component of the config names of environments and views.
pub const ENVIRONMENTS_PREFIX: &str = "environments";

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} name is empty")));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(Error::invalid(format!(
            "{what} name {name:?} is invalid: character {c:?} is not allowed (only a-z, 0-9, '_' and '-')"
        )));
    }
    Ok(())
}

/// A service name: `[a-z0-9_-]`, as a config name component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// Parses and validates a service name.
    pub fn parse(name: &str) -> Result<Self> {
        check_name("service", name)?;
        if name.len() > 100 {
            return Err(Error::invalid(format!(
                "service name {name:?} is over 100 bytes"
            )));
        }
        Ok(ServiceName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The service's node: `/environments/<service>`. Its data version is
    /// the version of the tree's shape, bumped whenever an environment is
    /// created or deleted.
    pub fn node_path(&self) -> Result<NodePath> {
        NodePath::parse(ENVIRONMENTS_ROOT)?.join(&self.0)
    }

    /// The name of the service's environments in metaconfigs and of the
    /// monitor's local file: `environments.<service>`.
    pub fn metaconfig_name(&self) -> Result<ConfigName> {
        ConfigName::parse(&format!("{ENVIRONMENTS_PREFIX}.{}", self.0))
    }

    /// Where host associations live: one node per host.
    pub fn hosts_path(&self) -> Result<NodePath> {
        self.node_path()?.join("hosts")
    }

    /// The association node of `host`.
    pub fn host_path(&self, host: &HostId) -> Result<NodePath> {
        self.hosts_path()?.join(host.as_str())
    }

    /// Where the hosts associated with each environment are listed (one
    /// child per host under one node per environment), so that deleting
    /// an environment with hosts fails inside its transaction.
    pub fn members_path(&self, env: &EnvPath) -> Result<NodePath> {
        self.node_path()?.join("members")?.join(&env.member_key())
    }

    /// The config holding `env`'s own content:
    /// `environments.<service>.conf[.<env>…]`.
    pub fn content_config(&self, env: &EnvPath) -> Result<ConfigName> {
        self.config("conf", env)
    }

    /// The config holding `env`'s view: `environments.<service>.views[.<env>…]`.
    pub fn view_config(&self, env: &EnvPath) -> Result<ConfigName> {
        self.config("views", env)
    }

    fn config(&self, kind: &str, env: &EnvPath) -> Result<ConfigName> {
        let mut name = format!("{ENVIRONMENTS_PREFIX}.{}.{kind}", self.0);
        for component in env.components() {
            name.push('.');
            name.push_str(component);
        }
        ConfigName::parse(&name).map_err(|e| {
            Error::invalid(format!(
                "environment {env} of service {self} is invalid: {}",
                e.message()
            ))
        })
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An environment's place in its service's tree: `/` (the root), `/prod`,
/// `/prod/us-east`. Components are `[a-z0-9_-]`; a leading `/` is
/// optional when parsing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvPath(Vec<String>);

impl EnvPath {
    /// The root environment, `/`.
    pub fn root() -> Self {
        EnvPath(Vec::new())
    }

    /// Parses `/`, `prod`, `/prod/us-east`…
    pub fn parse(path: &str) -> Result<Self> {
        if path == "/" {
            return Ok(Self::root());
        }
        let rest = path.strip_prefix('/').unwrap_or(path);
        if rest.is_empty() {
            return Err(Error::invalid(
                "environment path is empty (the root environment is \"/\")",
            ));
        }
        let mut components = Vec::new();
        for component in rest.split('/') {
            if component.is_empty() {
                return Err(Error::invalid(format!(
                    "environment path {path:?} has an empty component"
                )));
            }
            check_name("environment", component)
                .map_err(|e| Error::invalid(format!("in {path:?}: {}", e.message())))?;
            components.push(component.to_owned());
        }
        Ok(EnvPath(components))
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, outermost first; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How deep: 0 for the root.
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// The parent; `None` for the root.
    pub fn parent(&self) -> Option<EnvPath> {
        let mut parent = self.0.clone();
        parent.pop().map(|_| EnvPath(parent))
    }

    /// The child `name` (validated).
    pub fn child(&self, name: &str) -> Result<EnvPath> {
        check_name("environment", name)?;
        let mut child = self.0.clone();
        child.push(name.to_owned());
        Ok(EnvPath(child))
    }

    /// The root, then every ancestor, then this environment: the order in
    /// which contents merge into its view.
    pub fn chain(&self) -> Vec<EnvPath> {
        (0..=self.0.len())
            .map(|n| EnvPath(self.0[..n].to_vec()))
            .collect()
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &EnvPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// One node name for the environment: `@root`, `prod`, `prod.us-east`
    /// (`.` and `@` cannot occur in a component).
    pub fn member_key(&self) -> String {
        if self.is_root() {
            "@root".to_owned()
        } else {
            self.0.join(".")
        }
    }
}

impl fmt::Display for EnvPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for component in &self.0 {
            write!(f, "/{component}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for EnvPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        EnvPath::parse(s)
    }
}

/// Longest accepted host identity: a DNS name's limit.
pub const MAX_HOST_LEN: usize = 253;

/// A host's identity, as its association node is named: by default its
/// FQDN (see [`local_host_id`](super::local_host_id)). Case does not
/// matter in DNS names, so identities are lowercased; `[a-z0-9._-]`,
/// starting with a letter or digit, at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(String);

impl HostId {
    /// Parses and validates (and lowercases) a host identity.
    pub fn parse(host: &str) -> Result<Self> {
        let lower = host.to_ascii_lowercase();
        let invalid = |why: &str| Error::invalid(format!("host {host:?} is invalid: {why}"));
        if lower.is_empty() {
            return Err(invalid("it is empty"));
        }
        if lower.len() > MAX_HOST_LEN {
            return Err(invalid("it is over 253 bytes"));
        }
        if !lower.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid("it must start with a letter or digit"));
        }
        if let Some(c) = lower.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        }) {
            return Err(invalid(&format!(
                "character {c:?} is not allowed (only letters, digits, '.', '-' and '_')"
            )));
        }
        Ok(HostId(lower))
    }

    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_map_to_configs_and_nodes() {
        let service = ServiceName::parse("web").unwrap();
        let leaf = EnvPath::parse("prod/us-east").unwrap();
        assert_eq!(leaf, EnvPath::parse("/prod/us-east").unwrap());
        assert_eq!(leaf.to_string(), "/prod/us-east");
        assert_eq!(
            service.content_config(&leaf).unwrap().as_str(),
            "environments.web.conf.prod.us-east"
        );
        assert_eq!(
            service.view_config(&EnvPath::root()).unwrap().as_str(),
            "environments.web.views"
        );
        assert_eq!(
            service.members_path(&leaf).unwrap().as_str(),
            "/environments/web/members/prod.us-east"
        );
        let chain: Vec<String> = leaf.chain().iter().map(|e| e.to_string()).collect();
        assert_eq!(chain, ["/", "/prod", "/prod/us-east"]);
        assert_eq!(leaf.parent().unwrap().to_string(), "/prod");
        assert_eq!(EnvPath::root().parent(), None);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "Web", "a.b", "a/b", "a b", "é"] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "//", "prod//x", "prod/", "Prod", "a.b", "../x", "p@"] {
            assert!(EnvPath::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "-a", "a/b", "a b", "a\0"] {
            assert!(HostId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            HostId::parse("Web-1.Example.COM").unwrap().as_str(),
            "web-1.example.com"
        );
        let deep = format!("/{}", ["abcdefghij"; 30].join("/"));
        let env = EnvPath::parse(&deep).unwrap();
        let service = ServiceName::parse("web").unwrap();
        assert!(
            service.content_config(&env).is_err(),
            "a config name over 255 bytes"
        );
    }
}
