//! Decider flags, serversets with their live members, and dependencies,
//! nested and resolved.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use kingpin_api::decider::DECIDER_CONFIG;
use kingpin_api::discovery::ServerSet;
use kingpin_api::metaconfig::MetaConfigManager;
use kingpin_api::{ConfigName, ErrorKind, NodePath};
use maud::{html, Markup};
use serde_json::Value;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::pages::config_name;
use crate::pages::layout::{config_link, page};
use crate::{when, AppState};

/// `/decider`: every flag and its value.
pub async fn decider(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
) -> Result<Markup, PageError> {
    who.require(DECIDER_CONFIG, Role::Viewer)?;
    let name = config_name(DECIDER_CONFIG)?;
    let config = state.store.read(&name).await?;
    let flags: Vec<(String, Value)> = match &config {
        Some(c) if !c.content.iter().all(u8::is_ascii_whitespace) => {
            match serde_json::from_slice::<Value>(&c.content) {
                Ok(Value::Object(map)) => map.into_iter().collect(),
                _ => {
                    return Err(PageError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("{DECIDER_CONFIG} does not hold a JSON object"),
                    ))
                }
            }
        }
        _ => Vec::new(),
    };
    Ok(page(
        &who,
        "Decider",
        html! {
            h1 { "Decider" }
            p.muted { "Values in [0, 100]: the share of decisions that say yes. Kept in " (config_link(DECIDER_CONFIG)) "." }
            @if let Some(c) = &config { p.muted { "Version " (c.record.version) " by " (c.record.author) ", " (when(c.record.timestamp_ms)) "." } }
            table #flags {
                thead { tr { th { "flag" } th { "value" } } }
                tbody { @for (flag, value) in &flags { tr { td { code { (flag) } } td { (value.to_string()) } } } }
            }
            @if who.may(DECIDER_CONFIG, Role::Editor) {
                div.actions { a.button href=(format!("/config/{DECIDER_CONFIG}/edit")) { "Edit flags" } }
            }
        },
    ))
}

/// Every serverset name under `/discovery` (`discovery.<service>.<env>`).
async fn serverset_names(state: &AppState) -> Result<Vec<ConfigName>, PageError> {
    let children = |path: NodePath| {
        let coordinator = state.coordinator.clone();
        async move {
            match coordinator.children(&path).await {
                Ok(names) => Ok(names),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        }
    };
    let root = NodePath::parse("/discovery")?;
    let mut names = Vec::new();
    for service in children(root.clone()).await? {
        for env in children(root.join(&service)?).await? {
            if let Ok(name) = ConfigName::parse(&format!("discovery.{service}.{env}")) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// `/serversets`: every serverset and how many members are alive.
pub async fn serversets(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
) -> Result<Markup, PageError> {
    let mut rows = Vec::new();
    for name in serverset_names(&state).await? {
        if !who.may(name.as_str(), Role::Viewer) {
            continue;
        }
        let members = ServerSet::from_name(state.coordinator.clone(), &name)?
            .members()
            .await?;
        let alive = members.iter().filter(|m| m.is_alive()).count();
        rows.push((name, alive, members.len()));
    }
    Ok(page(
        &who,
        "Serversets",
        html! {
            h1 { "Serversets" }
            @if rows.is_empty() { p.muted { "No serversets that you may see." } }
            @else {
                table #serversets {
                    thead { tr { th { "serverset" } th { "alive" } th { "members" } } }
                    tbody { @for (name, alive, all) in &rows {
                        tr { td { a href=(format!("/serverset/{name}")) { (name) } } td { (alive) } td { (all) } }
                    } }
                }
            }
        },
    ))
}

/// `/serverset/{name}`: the live members.
pub async fn serverset(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Viewer)?;
    let members = ServerSet::from_name(state.coordinator.clone(), &name)?
        .members()
        .await?;
    Ok(page(
        &who,
        name.as_str(),
        html! {
            div.crumbs { a href="/serversets" { "serversets" } }
            h1 { (name) }
            p.muted { (members.len()) " members, read now from the coordinator." }
            table #members {
                thead { tr { th { "endpoint" } th { "status" } th { "shard" } th { "other endpoints" } } }
                tbody { @for m in &members {
                    tr {
                        td { code { (m.endpoint) } }
                        td { (m.status) }
                        td { (m.shard.map(|s| s.to_string()).unwrap_or_default()) }
                        td { @for (n, e) in &m.additional_endpoints { (n) ": " code { (e) } br; } }
                    }
                } }
            }
        },
    ))
}

/// `/dependencies`: every dependency.
pub async fn dependencies(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
) -> Result<Markup, PageError> {
    let deps = state.metaconfigs.list_dependencies().await?;
    Ok(page(
        &who,
        "Dependencies",
        html! {
            h1 { "Dependencies" }
            @if deps.is_empty() { p.muted { "No dependencies." } }
            ul #dependencies { @for d in &deps { li { a href=(format!("/dependency/{d}")) { (d) } } } }
        },
    ))
}

/// The members of `dep`, nested; a dependency met before is not expanded
/// again (cycles are allowed).
fn nested<'a>(
    manager: &'a MetaConfigManager,
    dep: ConfigName,
    seen: &'a mut BTreeSet<ConfigName>,
) -> futures::future::BoxFuture<'a, Result<Markup, PageError>> {
    Box::pin(async move {
        seen.insert(dep.clone());
        let members = manager.members(&dep).await?;
        let mut items = Vec::new();
        for member in members {
            let inner = if kingpin_api::metaconfig::is_dependency(&member) {
                if seen.contains(&member) {
                    Some(html! { span.muted { " (already shown above)" } })
                } else {
                    Some(nested(manager, member.clone(), seen).await?)
                }
            } else {
                None
            };
            items.push((member, inner));
        }
        Ok(html! {
            ul.tree { @for (member, inner) in &items {
                li {
                    @if inner.is_some() { a href=(format!("/dependency/{member}")) { (member) } } @else { (config_link(member.as_str())) }
                    @if let Some(inner) = inner { (inner) }
                }
            } }
        })
    })
}

/// `/dependency/{name}`: its members nested, and what it resolves to.
pub async fn dependency(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    let tree = nested(&state.metaconfigs, name.clone(), &mut BTreeSet::new()).await?;
    let resolved = state.metaconfigs.resolve(&name).await?;
    Ok(page(
        &who,
        name.as_str(),
        html! {
            div.crumbs { a href="/dependencies" { "dependencies" } }
            h1 { (name) }
            h2 { "Members" }
            (tree)
            h2 { "Resolved: what a monitor subscribed to it syncs" }
            table #resolved {
                thead { tr { th { "name" } th { "kind" } th { "file" } th { "max random delay" } } }
                tbody { @for m in &resolved.metaconfigs {
                    tr {
                        td { @if m.kind == kingpin_api::metaconfig::MetaConfigKind::Serverset { a href=(format!("/serverset/{}", m.name)) { (m.name) } } @else { (config_link(m.name.as_str())) } }
                        td { (m.kind) } td { code { (m.file_name) } } td { (m.max_random_delay_ms) " ms" }
                    }
                } }
            }
            @if !resolved.missing.is_empty() {
                p.notice.warn { "Named but missing: " @for m in &resolved.missing { code { (m) } " " } }
            }
            p.muted { "Dependencies visited: " @for d in &resolved.dependencies { (d) " " } }
        },
    ))
}
