//! A config's page, its history, one old version, and the diff between
//! any two versions.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::editors::pretty;
use crate::error::PageError;
use crate::host_status::versions;
use crate::kind::{environment_of, infer_kind, ConfigKind};
use crate::pages::config_name;
use crate::pages::layout::{crumbs, page, size};
use crate::{diff, when, AppState};

#[derive(Deserialize)]
pub struct Saved {
    saved: Option<u64>,
    proposed: Option<String>,
}

/// How many hosts are on each version, which are behind or failing.
fn hosts_section(state: &AppState, name: &str, current: u64) -> Markup {
    let hosts = state.hosts.of_config(name);
    let behind: Vec<_> = hosts
        .iter()
        .filter(|h| h.version.is_some_and(|v| v < current))
        .collect();
    let failing: Vec<_> = hosts.iter().filter(|h| h.error.is_some()).collect();
    html! {
        h2 { "Hosts" }
        @if hosts.is_empty() {
            p.muted { "No reporting host syncs this config (monitors report with report_status = true)." }
        } @else {
            p #host-versions {
                @for (i, (version, count)) in versions(&hosts).iter().enumerate() {
                    @if i > 0 { " · " }
                    strong { (count) } " on "
                    @match version { Some(v) => { "version " (v) @if *v == current { " (current)" } }, None => { "no version yet" } }
                }
            }
            @if !behind.is_empty() || !failing.is_empty() {
                table {
                    thead { tr { th { "host" } th { "version" } th { "last sync" } th { "state" } } }
                    tbody {
                        @for h in behind.iter().chain(failing.iter()) {
                            tr {
                                td { a href=(format!("/host/{}", h.host)) { (h.host) } }
                                td { (h.version.map(|v| v.to_string()).unwrap_or_default()) }
                                td { (when(h.synced_ms.unwrap_or(0))) }
                                td {
                                    @if let Some(e) = &h.error { span.badge-bad { "failing: " (e) } }
                                    @else { span.badge-behind { "behind" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/config/{name}`: the current content, its record and its hosts.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Viewer)?;
    let config = state.store.read(&name).await?;
    let Some(config) = config else {
        return Err(PageError::not_found(format!(
            "config {name} does not exist"
        )));
    };
    let kind = infer_kind(name.as_str(), &config.content);
    let record = &config.record;
    let editable = who.may(name.as_str(), Role::Editor) && kind != ConfigKind::EnvironmentView;
    let environment = environment_of(name.as_str());
    Ok(page(
        &who,
        name.as_str(),
        html! {
            (crumbs(name.as_str()))
            h1 { (name) " " span.kind { (kind) } }
            @if let Some(v) = saved.saved { p.notice.ok role="status" { "Saved version " (v) "." } }
            @if let Some(id) = &saved.proposed {
                p.notice.ok role="status" { "Proposed for review: " a href=(format!("/approval/{id}")) { (id) } ". Another user publishes it." }
            }
            @if state.approvals.required(name.as_str()) {
                p.notice.warn { "Changes to this config need another user's approval." }
            }
            table {
                tr { th { "version" } td #version { (record.version) } th { "size" } td { (size(record.size)) } }
                tr { th { "author" } td { (record.author) } th { "time" } td { (when(record.timestamp_ms)) } }
                tr { th { "message" } td colspan="3" { (record.message) } }
                tr { th { "sha256" } td colspan="3" { code { (record.sha256) } } }
                @if !record.sources.is_empty() {
                    tr { th { "merged from" } td colspan="3" {
                        @for s in &record.sources { a href=(format!("/config/{}", s.config)) { (s.config) } " v" (s.version) br; }
                    } }
                }
            }
            div.actions {
                @if editable { a.button #edit href=(format!("/config/{name}/edit")) { "Edit" } }
                a.button.secondary href=(format!("/config/{name}/history")) { "History" }
                @if let Some((service, env, _)) = &environment {
                    a.button.secondary href=(format!("/environments/{service}?env={env}")) { "Environment " (env) }
                }
            }
            @if kind == ConfigKind::EnvironmentView {
                p.muted { "A view is derived from its environments: edit those, and it is rebuilt." }
            }
            h2 { "Content" }
            pre.content #content { (pretty(&config.content)) }
            (hosts_section(&state, name.as_str(), record.version))
        },
    ))
}

/// `/config/{name}/history`: every version, with diffs and rollback.
pub async fn history(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Viewer)?;
    let mut records = state.store.history(&name).await?;
    if records.is_empty() {
        return Err(PageError::not_found(format!(
            "config {name} does not exist"
        )));
    }
    records.reverse();
    let current = records[0].version;
    let editable = who.may(name.as_str(), Role::Editor)
        && environment_of(name.as_str()).is_none_or(|(_, _, view)| !view);
    Ok(page(
        &who,
        &format!("History of {name}"),
        html! {
            (crumbs(name.as_str()))
            h1 { "History of " a href=(format!("/config/{name}")) { (name) } }
            form.actions method="get" action=(format!("/config/{name}/diff")) {
                "Compare version "
                input type="number" name="from" min="1" value=(records.get(1).map_or(current, |r| r.version)) aria-label="from";
                " with "
                input type="number" name="to" min="1" value=(current) aria-label="to";
                button.secondary type="submit" { "Diff" }
            }
            table #history {
                thead { tr { th { "version" } th { "author" } th { "message" } th { "time" } th {} } }
                tbody {
                    @for r in &records {
                        tr {
                            td { a href=(format!("/config/{name}/version/{}", r.version)) { (r.version) } }
                            td { (r.author) }
                            td { (r.message) }
                            td { (when(r.timestamp_ms)) }
                            td {
                                @if r.version > 1 {
                                    a href=(format!("/config/{name}/diff?from={}&to={}", r.version - 1, r.version)) { "diff" }
                                }
                                @if editable && r.version != current {
                                    " · " a href=(format!("/config/{name}/rollback?version={}", r.version)) { "roll back to this" }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `/config/{name}/version/{v}`: one version's content.
pub async fn version(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path((name, version)): Path<(String, u64)>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Viewer)?;
    let record = state
        .store
        .record_at(&name, version)
        .await?
        .ok_or_else(|| PageError::not_found(format!("{name} has no version {version}")))?;
    let content = state.store.content(&name, &record).await?;
    Ok(page(
        &who,
        &format!("{name} version {version}"),
        html! {
            (crumbs(name.as_str()))
            h1 { a href=(format!("/config/{name}")) { (name) } " version " (version) }
            p { (record.author) ", " (when(record.timestamp_ms)) ": " (record.message) }
            pre.content { (pretty(&content)) }
        },
    ))
}

#[derive(Deserialize)]
pub struct Between {
    from: u64,
    to: u64,
}

/// `/config/{name}/diff?from=A&to=B`: what changed between two versions.
pub async fn diff(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    Query(between): Query<Between>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Viewer)?;
    let mut contents = Vec::new();
    for version in [between.from, between.to] {
        let record = state
            .store
            .record_at(&name, version)
            .await?
            .ok_or_else(|| PageError::not_found(format!("{name} has no version {version}")))?;
        contents.push(state.store.content(&name, &record).await?);
    }
    let (markup, added, removed) = diff::render(&contents[0], &contents[1]);
    Ok(page(
        &who,
        &format!("{name}: {} → {}", between.from, between.to),
        html! {
            (crumbs(name.as_str()))
            h1 { a href=(format!("/config/{name}")) { (name) } ": version " (between.from) " → " (between.to) }
            p.muted { "+" (added) " −" (removed) " lines" }
            (markup)
        },
    ))
}
