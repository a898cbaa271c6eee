//! Moving a service from Jones: read its ZooKeeper layout
//! (`/services/<svc>/conf[/env…]`, `/services/<svc>/views[/env…]`,
//! `/services/<svc>/nodemaps`) and plan a [`ServiceDocument`] whose views
//! are exactly the views Jones gave each host.
//!
//! Jones merged only top-level keys: a child that sets part of a nested
//! object replaced the parent's whole object, where the deep merge keeps
//! the parent's other keys. By default the plan writes the `null`s that
//! drop those keys (and, where Jones's stored view did not match its
//! contents, the patch that gives the stored view), and lists each place.

use std::collections::BTreeMap;

use super::merge::{
    differences, jones_merge, merge_chain, parse_content, reproducing_content, Content,
};
use super::names::{EnvPath, HostId, ServiceName};
use super::transfer::{HostEntry, ServiceDocument, DOCUMENT_FORMAT};
use crate::coordinator::Coordinator;
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// A service as Jones kept it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JonesService {
    /// The service name.
    pub service: String,
    /// Each environment's own content.
    pub contents: BTreeMap<EnvPath, Content>,
    /// The views Jones materialized, where present.
    pub views: BTreeMap<EnvPath, Content>,
    /// Each host's environment, from the nodemaps.
    pub hosts: BTreeMap<HostId, EnvPath>,
}

/// Why an imported environment's content differs from its Jones content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JonesDifference {
    /// It overrides part of a nested object: `null`s remove what Jones's
    /// top-level merge dropped (and the deep merge would keep).
    NestedOverride,
    /// Jones's stored view did not match its contents (a view clobbered
    /// by a concurrent write): the content reproduces the stored view.
    StaleView,
    /// Kept as it was (`keep_contents`): the view differs from Jones's.
    ViewChanges,
}

/// One environment whose import is not a plain copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JonesAdjustment {
    /// The environment.
    pub environment: EnvPath,
    /// Why.
    pub difference: JonesDifference,
    /// The places (JSON Pointers) that differ.
    pub places: Vec<String>,
}

/// What importing a Jones service will write.
#[derive(Debug, Clone, PartialEq)]
pub struct JonesPlan {
    /// The service, ready for [`Environments::import`](super::Environments::import).
    pub document: ServiceDocument,
    /// Every environment whose content or view is not a plain copy.
    pub adjustments: Vec<JonesAdjustment>,
}

fn jones_root(service: &ServiceName) -> Result<NodePath> {
    NodePath::parse("/services")?.join(service.as_str())
}

async fn read_object(source: &dyn Coordinator, path: &NodePath) -> Result<Option<Content>> {
    match source.get(path).await {
        Ok(node) if node.data.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(node) => parse_content(&format!("Jones node {path}"), &node.data).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn child_names(source: &dyn Coordinator, path: &NodePath) -> Result<Vec<String>> {
    match source.children(path).await {
        Ok(names) => Ok(names),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn node_of(base: &NodePath, env: &EnvPath) -> Result<NodePath> {
    env.components()
        .try_fold(base.clone(), |path, c| path.join(c))
}

/// Reads service `service` from Jones's layout in `source` (a coordinator
/// opened on Jones's ZooKeeper). Names Jones allowed and kingpin does not
/// (environments, hosts) are errors naming them.
pub async fn read_jones(source: &dyn Coordinator, service: &ServiceName) -> Result<JonesService> {
    let root = jones_root(service)?;
    let conf = root.join("conf")?;
    let views = root.join("views")?;
    let mut jones = JonesService {
        service: service.to_string(),
        ..JonesService::default()
    };
    let mut pending = vec![EnvPath::root()];
    while let Some(env) = pending.pop() {
        let node = node_of(&conf, &env)?;
        let content = read_object(source, &node).await?;
        let Some(content) = content.or_else(|| (!env.is_root()).then(Content::new)) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("Jones has no service {service} ({conf} is missing or empty)"),
            ));
        };
        jones.contents.insert(env.clone(), content);
        if let Some(view) = read_object(source, &node_of(&views, &env)?).await? {
            jones.views.insert(env.clone(), view);
        }
        for name in child_names(source, &node).await? {
            let child = env.child(&name).map_err(|e| {
                Error::invalid(format!(
                    "Jones environment {name:?} under {env} cannot be imported: {}",
                    e.message()
                ))
            })?;
            pending.push(child);
        }
    }
    let nodemaps = root.join("nodemaps")?;
    let data = match source.get(&nodemaps).await {
        Ok(node) => node.data,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for (host, path) in parse_nodemaps(&data)? {
        let host = HostId::parse(&host)
            .map_err(|e| Error::invalid(format!("Jones nodemaps: {}", e.message())))?;
        let env = view_environment(&views, &path)?;
        if !jones.contents.contains_key(&env) {
            return Err(Error::invalid(format!("Jones nodemaps associate {host} with {path}, which is not an environment of {service}")));
        }
        jones.hosts.insert(host, env);
    }
    Ok(jones)
}

/// The nodemaps: one JSON object of host to view path, or (older Jones)
/// `host -> path` lines.
fn parse_nodemaps(data: &[u8]) -> Result<Vec<(String, String)>> {
    let text =
        std::str::from_utf8(data).map_err(|_| Error::invalid("Jones nodemaps are not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text) {
        return Ok(map.into_iter().collect());
    }
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match line.split_once("->") {
            Some((host, path)) => Ok((host.trim().to_owned(), path.trim().to_owned())),
            None => Err(Error::invalid(format!(
                "Jones nodemaps line {line:?} is neither JSON nor `host -> path`"
            ))),
        })
        .collect()
}

/// The environment of a view path `/services/<svc>/views[/env…]`.
fn view_environment(views: &NodePath, path: &str) -> Result<EnvPath> {
    let node = NodePath::parse(path.trim_end_matches('/'))
        .map_err(|e| Error::invalid(format!("Jones nodemaps: {}", e.message())))?;
    if !node.starts_with(views) {
        return Err(Error::invalid(format!(
            "Jones nodemaps point at {path}, which is not under {views}"
        )));
    }
    let rest: Vec<&str> = node.components().skip(views.depth()).collect();
    if rest.is_empty() {
        Ok(EnvPath::root())
    } else {
        EnvPath::parse(&rest.join("/"))
    }
}

/// Plans the import of `jones`. By default every view will equal the view
/// Jones materialized for it (or, where Jones stored none, Jones's merge of
/// the contents); with `keep_contents` the contents are copied as they are
/// and the adjustments say whose views change. Errors (before anything is
/// written) when a Jones view holds `null`s, which a merge patch cannot
/// write.
pub fn plan_jones_import(jones: &JonesService, keep_contents: bool) -> Result<JonesPlan> {
    let mut adjustments = Vec::new();
    let mut ours: BTreeMap<EnvPath, Content> = BTreeMap::new();
    let mut our_views: BTreeMap<EnvPath, Content> = BTreeMap::new();
    for (env, own) in &jones.contents {
        let jones_chain: Vec<&Content> = env
            .chain()
            .iter()
            .filter_map(|e| jones.contents.get(e))
            .collect();
        let target = jones
            .views
            .get(env)
            .cloned()
            .unwrap_or_else(|| jones_merge(jones_chain));
        let parent_view = env
            .parent()
            .and_then(|p| our_views.get(&p).cloned())
            .unwrap_or_default();
        let content = if keep_contents {
            let view = merge_chain([&parent_view, own]);
            if view != target {
                adjustments.push(JonesAdjustment {
                    environment: env.clone(),
                    difference: JonesDifference::ViewChanges,
                    places: differences(&target, &view),
                });
            }
            own.clone()
        } else {
            let fixed = reproducing_content(&parent_view, own, &target).map_err(|nulls| {
                Error::invalid(format!(
                    "Jones's view of {env} holds null at {}, which kingpin's merge cannot reproduce (null removes a key); nothing was imported",
                    nulls.join(", ")
                ))
            })?;
            if fixed != *own {
                let nested_only = merge_chain([&parent_view, &fixed])
                    == merge_chain([&parent_view, &pad_only(&parent_view, own)]);
                adjustments.push(JonesAdjustment {
                    environment: env.clone(),
                    difference: if nested_only {
                        JonesDifference::NestedOverride
                    } else {
                        JonesDifference::StaleView
                    },
                    places: differences(own, &fixed),
                });
            }
            fixed
        };
        our_views.insert(env.clone(), merge_chain([&parent_view, &content]));
        ours.insert(env.clone(), content);
    }
    let document = ServiceDocument {
        format: DOCUMENT_FORMAT.to_owned(),
        service: jones.service.clone(),
        environments: ours.into_iter().map(|(e, c)| (e.to_string(), c)).collect(),
        hosts: jones
            .hosts
            .iter()
            .map(|(host, env)| {
                let entry = HostEntry {
                    environment: env.to_string(),
                    pinned_version: None,
                };
                (host.to_string(), entry)
            })
            .collect(),
    };
    Ok(JonesPlan {
        document,
        adjustments,
    })
}

/// `own` as Jones meant it under `parent_view`: whole top-level values, the
/// view Jones's merge gives.
fn pad_only(parent_view: &Content, own: &Content) -> Content {
    let target = jones_merge([parent_view, own]);
    reproducing_content(parent_view, own, &target).unwrap_or_else(|_| own.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(value: serde_json::Value) -> Content {
        super::super::merge::content_of("test", value).unwrap()
    }

    #[test]
    fn nodemaps_parse_as_json_or_lines() {
        let json = br#"{"web1": "/services/s/views/prod", "web2": "/services/s/views"}"#;
        assert_eq!(parse_nodemaps(json).unwrap().len(), 2);
        let lines = b"web1 -> /services/s/views/prod\nweb2 -> /services/s/views\n";
        assert_eq!(
            parse_nodemaps(lines).unwrap()[0],
            ("web1".to_owned(), "/services/s/views/prod".to_owned())
        );
        let views = NodePath::parse("/services/s/views").unwrap();
        assert_eq!(
            view_environment(&views, "/services/s/views").unwrap(),
            EnvPath::root()
        );
        assert_eq!(
            view_environment(&views, "/services/s/views/prod/east")
                .unwrap()
                .to_string(),
            "/prod/east"
        );
        assert!(view_environment(&views, "/services/other/views/prod").is_err());
    }

    #[test]
    fn plans_reproduce_jones_views() {
        let mut jones = JonesService {
            service: "s".into(),
            ..JonesService::default()
        };
        let prod = EnvPath::parse("/prod").unwrap();
        jones.contents.insert(
            EnvPath::root(),
            content(json!({"db": {"host": "a", "pool": 5}, "x": 1})),
        );
        jones
            .contents
            .insert(prod.clone(), content(json!({"db": {"host": "b"}})));
        let plan = plan_jones_import(&jones, false).unwrap();
        assert_eq!(plan.adjustments.len(), 1);
        assert_eq!(
            plan.adjustments[0].difference,
            JonesDifference::NestedOverride
        );
        assert_eq!(plan.adjustments[0].places, ["/db/pool"]);
        let kept = plan_jones_import(&jones, true).unwrap();
        assert_eq!(kept.adjustments[0].difference, JonesDifference::ViewChanges);
        assert_eq!(kept.document.environments["/prod"], jones.contents[&prod]);
    }
}
