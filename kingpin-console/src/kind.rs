//! What kind of data a config holds, which decides how it is shown and
//! edited. Configs do not record their kind: it follows from the name
//! (the decider, environments) and the content's shape (KingPin's
//! managed data formats).

use std::fmt;

use kingpin_api::decider::DECIDER_CONFIG;
use kingpin_api::environment::{EnvPath, ServiceName, ENVIRONMENTS_PREFIX};
use kingpin_api::managed::MANAGED_DATA_PREFIX;
use serde_json::Value;

/// The kinds of config the console knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// A managed list: a JSON array.
    List,
    /// A managed map: a JSON object of scalar values.
    Map,
    /// A managed mapped list: a JSON object of arrays.
    MappedList,
    /// The decider: flag name → value in [0, 100].
    Decider,
    /// Any other JSON document.
    Json,
    /// Content that is not JSON.
    Text,
    /// An environment's own content (a JSON object).
    Environment,
    /// An environment's materialized view: derived, never edited.
    EnvironmentView,
}

impl ConfigKind {
    /// Every kind a new config can be created as.
    pub const CREATABLE: [ConfigKind; 5] = [
        ConfigKind::List,
        ConfigKind::Map,
        ConfigKind::MappedList,
        ConfigKind::Json,
        ConfigKind::Text,
    ];

    /// The kind's name in URLs and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::List => "list",
            ConfigKind::Map => "map",
            ConfigKind::MappedList => "mapped-list",
            ConfigKind::Decider => "decider",
            ConfigKind::Json => "json",
            ConfigKind::Text => "text",
            ConfigKind::Environment => "environment",
            ConfigKind::EnvironmentView => "environment-view",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ConfigKind::List,
            ConfigKind::Map,
            ConfigKind::MappedList,
            ConfigKind::Decider,
            ConfigKind::Json,
            ConfigKind::Text,
            ConfigKind::Environment,
            ConfigKind::EnvironmentView,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// Whether the content is JSON of some shape.
    pub fn is_json(self) -> bool {
        self != ConfigKind::Text
    }

    /// Whether it is edited as a table of rows.
    pub fn is_table(self) -> bool {
        matches!(
            self,
            ConfigKind::List | ConfigKind::Map | ConfigKind::MappedList | ConfigKind::Decider
        )
    }
}

impl fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment a content or view config belongs to:
/// `environments.<svc>.conf.<a>.<b>` → (`svc`, `/a/b`, is view).
pub fn environment_of(name: &str) -> Option<(ServiceName, EnvPath, bool)> {
    let rest = name.strip_prefix(ENVIRONMENTS_PREFIX)?.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let service = ServiceName::parse(parts.next()?).ok()?;
    let view = match parts.next()? {
        "conf" => false,
        "views" => true,
        _ => return None,
    };
    let path: Vec<&str> = parts.collect();
    let env = EnvPath::parse(&format!("/{}", path.join("/"))).ok()?;
    Some((service, env, view))
}

/// The kind a config's name alone decides, if it does.
pub fn kind_by_name(name: &str) -> Option<ConfigKind> {
    if name == DECIDER_CONFIG {
        return Some(ConfigKind::Decider);
    }
    environment_of(name).map(|(_, _, view)| {
        if view {
            ConfigKind::EnvironmentView
        } else {
            ConfigKind::Environment
        }
    })
}

/// The kind of config `name` holding `content`.
pub fn infer_kind(name: &str, content: &[u8]) -> ConfigKind {
    if let Some(kind) = kind_by_name(name) {
        return kind;
    }
    let managed = name.starts_with(MANAGED_DATA_PREFIX)
        && name.as_bytes().get(MANAGED_DATA_PREFIX.len()) == Some(&b'.');
    match serde_json::from_slice::<Value>(content) {
        Ok(Value::Array(_)) if managed => ConfigKind::List,
        Ok(Value::Object(map)) if managed && !map.is_empty() => {
            if map.values().all(Value::is_array) {
                ConfigKind::MappedList
            } else if map.values().all(|v| !v.is_array() && !v.is_object()) {
                ConfigKind::Map
            } else {
                ConfigKind::Json
            }
        }
        Ok(_) => ConfigKind::Json,
        // KingPin wrote an empty file for cleared managed data.
        Err(_) if managed && content.iter().all(u8::is_ascii_whitespace) => ConfigKind::List,
        Err(_) => ConfigKind::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_names_and_shapes() {
        let m = |s: &str| format!("config.manageddata.spam.{s}");
        assert_eq!(infer_kind(&m("a"), b"[\"x\"]"), ConfigKind::List);
        assert_eq!(infer_kind(&m("a"), b"{\"k\": 1}"), ConfigKind::Map);
        assert_eq!(infer_kind(&m("a"), b"{\"k\": [1]}"), ConfigKind::MappedList);
        assert_eq!(
            infer_kind(&m("a"), b"{\"k\": {\"x\": 1}}"),
            ConfigKind::Json
        );
        assert_eq!(infer_kind(&m("a"), b""), ConfigKind::List);
        assert_eq!(infer_kind("config.app", b"[1]"), ConfigKind::Json);
        assert_eq!(infer_kind("config.app", b"hello"), ConfigKind::Text);
        assert_eq!(
            infer_kind("config.manageddata.admin.decider", b"{}"),
            ConfigKind::Decider
        );
        assert_eq!(
            infer_kind("environments.shop.conf", b"{}"),
            ConfigKind::Environment
        );
        let (service, env, view) = environment_of("environments.shop.views.prod.east").unwrap();
        assert_eq!(
            (service.as_str(), env.to_string().as_str(), view),
            ("shop", "/prod/east", true)
        );
    }
}
