//! Environments: each service's tree, an environment's own content, its
//! inherited view with where every value comes from, and its hosts.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use kingpin_api::environment::{sources, EnvPath, ServiceName};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::editors::pretty;
use crate::error::PageError;
use crate::pages::layout::page;
use crate::{when, AppState};

/// `/environments`: the services that have environments.
pub async fn services(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
) -> Result<Markup, PageError> {
    let services = state.environments.services().await?;
    let visible: Vec<&ServiceName> = services
        .iter()
        .filter(|s| {
            s.content_config(&EnvPath::root())
                .is_ok_and(|n| who.may(n.as_str(), Role::Viewer))
        })
        .collect();
    Ok(page(
        &who,
        "Environments",
        html! {
            h1 { "Environments" }
            @if visible.is_empty() { p.muted { "No services with environments that you may see." } }
            ul #services { @for s in &visible { li { a href=(format!("/environments/{s}")) { (s) } } } }
            p.muted { "Create a service's root environment from the command line: kingpin env create SERVICE / --value '{}'." }
        },
    ))
}

#[derive(Deserialize)]
pub struct EnvQuery {
    env: Option<String>,
}

/// `/environments/{service}?env=/prod/us-east`: one environment.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(service): Path<String>,
    Query(query): Query<EnvQuery>,
) -> Result<Markup, PageError> {
    let service =
        ServiceName::parse(&service).map_err(|e| PageError::invalid(e.message().to_owned()))?;
    let env = EnvPath::parse(query.env.as_deref().unwrap_or("/"))
        .map_err(|e| PageError::invalid(e.message().to_owned()))?;
    let content_name = service.content_config(&env)?;
    who.require(content_name.as_str(), Role::Viewer)?;
    let tree = state.environments.tree(&service).await?;
    let mut chain = Vec::new();
    for path in env.chain() {
        match state.environments.read(&service, &path).await? {
            Some(found) => chain.push(found),
            None => {
                return Err(PageError::not_found(format!(
                    "environment {path} of service {service} does not exist"
                )))
            }
        }
    }
    let Some(own) = chain.last() else {
        return Err(PageError::not_found(format!(
            "environment {env} of service {service} does not exist"
        )));
    };
    let provenance = sources(
        &chain
            .iter()
            .map(|e| (e.path.clone(), &e.content))
            .collect::<Vec<_>>(),
    );
    let view = state.environments.view(&service, &env).await?;
    let hosts = state.environments.hosts_in(&service, &env).await?;
    let view_name = service.view_config(&env)?;
    let reported = state.hosts.of_config(view_name.as_str());
    let editable = who.may(content_name.as_str(), Role::Editor);
    Ok(page(
        &who,
        &format!("{service} {env}"),
        html! {
            div.crumbs { a href="/environments" { "environments" } " . " a href=(format!("/environments/{service}")) { (service) } }
            h1 { (service) " " (env) }
            div.grid {
                div {
                    h2 { "Tree" }
                    ul.tree #env-tree {
                        @for path in &tree {
                            li.current[*path == env] class=(format!("depth{}", path.depth().min(8))) {
                                a href=(format!("/environments/{service}?env={path}")) { (path) }
                            }
                        }
                    }
                    @if editable {
                        form method="get" action="/new" {
                            input type="hidden" name="kind" value="environment";
                            label for="child" { "New child of " (env) }
                            br;
                            input.mono #child type="text" name="name" value=(format!("{content_name}.")) size="40";
                            " " button.secondary type="submit" { "Create" }
                        }
                    }
                }
                div {
                    h2 { "Own content" }
                    p.muted { "Version " (own.record.version) " by " (own.record.author) ", " (when(own.record.timestamp_ms)) ": " (own.record.message) }
                    pre.content #own { (pretty(&serde_json::to_vec(&Value::Object(own.content.clone())).unwrap_or_default())) }
                    div.actions {
                        @if editable { a.button #edit-env href=(format!("/config/{content_name}/edit")) { "Edit" } }
                        a.button.secondary href=(format!("/config/{content_name}/history")) { "History" }
                    }
                }
            }
            h2 { "Inherited view" }
            @if let Some(view) = &view {
                p.muted { "View version " (view.record.version) " — " a href=(format!("/config/{view_name}")) { (view_name) } }
            }
            table #view {
                thead { tr { th { "key" } th { "value" } th { "from" } } }
                tbody {
                    @for s in &provenance {
                        tr {
                            td { code { (s.pointer) } }
                            td { code { (s.value.to_string()) } }
                            td { a href=(format!("/environments/{service}?env={}", s.environment)) { (s.environment) } @if s.environment == env { " (own)" } }
                        }
                    }
                }
            }
            h2 { "Hosts associated with " (env) }
            @if hosts.is_empty() { p.muted { "None." } }
            @else {
                table #hosts {
                    thead { tr { th { "host" } th { "view version on disk" } } }
                    tbody {
                        @for host in &hosts {
                            tr {
                                td { a href=(format!("/host/{}", host.as_str())) { (host.as_str()) } }
                                td { (reported.iter().find(|r| r.host == host.as_str()).and_then(|r| r.version).map(|v| v.to_string()).unwrap_or_else(|| "not reported".into())) }
                            }
                        }
                    }
                }
            }
        },
    ))
}
