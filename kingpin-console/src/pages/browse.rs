//! Browsing configs by name prefix, and searching by name and content.

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::catalog::CatalogEntry;
use crate::error::PageError;
use crate::pages::layout::{config_link, page, size};
use crate::{when, AppState};

/// Rows shown at most on one page.
const MAX_ROWS: usize = 1000;
/// Search results shown at most.
const MAX_HITS: usize = 200;

#[derive(Deserialize)]
pub struct TreeQuery {
    #[serde(default)]
    prefix: String,
}

fn kind(entry: &CatalogEntry) -> Markup {
    html! { span.kind { (entry.kind.map_or("large", |k| k.as_str())) } }
}

/// The columns describing a config.
pub fn entry_cells(entry: &CatalogEntry) -> Markup {
    html! {
        td { (kind(entry)) }
        td { (entry.record.version) }
        td { (size(entry.record.size)) }
        td { (entry.record.author) }
        td { (when(entry.record.timestamp_ms)) }
    }
}

fn freshness(state: &AppState) -> Markup {
    html! {
        p.muted {
            (state.catalog.len()) " configs in all; list read at " (when(state.catalog.refreshed_ms()))
            " (each config's own page is always current)."
        }
    }
}

/// `/configs?prefix=config.manageddata`: the names one level below.
pub async fn tree(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Query(query): Query<TreeQuery>,
) -> Result<Markup, PageError> {
    let prefix = query.prefix.trim_matches('.').to_owned();
    if !prefix.is_empty() {
        crate::pages::config_name(&prefix)?;
    }
    state.catalog.ensure_loaded().await?;
    let (rows, total) = state
        .catalog
        .tree(&prefix, |name| who.may(name, Role::Viewer), MAX_ROWS);
    let parts: Vec<&str> = if prefix.is_empty() {
        Vec::new()
    } else {
        prefix.split('.').collect()
    };
    let may_create = who.may(if prefix.is_empty() { "" } else { &prefix }, Role::Editor);
    let title = if prefix.is_empty() {
        "Configs".to_owned()
    } else {
        format!("{prefix}.*")
    };
    Ok(page(
        &who,
        &title,
        html! {
            div.crumbs {
                a href="/configs" { "configs" }
                @for i in 0..parts.len() {
                    " . " a href=(format!("/configs?prefix={}", parts[..=i].join("."))) { (parts[i]) }
                }
            }
            h1 { (title) }
            div.actions {
                form method="get" action="/search" {
                    input type="search" name="q" placeholder="Search names and contents" aria-label="Search";
                    input type="hidden" name="content" value="on";
                    " " button.secondary type="submit" { "Search" }
                }
                @if may_create {
                    a.button href=(format!("/new?prefix={prefix}")) { "New config" }
                }
            }
            @if rows.is_empty() {
                p.muted { "No configs here that you may see." }
            } @else {
                table #tree {
                    thead { tr { th { "name" } th { "kind" } th { "version" } th { "size" } th { "author" } th { "time" } } }
                    tbody {
                        @for row in &rows {
                            tr {
                                td {
                                    @if row.below > 0 {
                                        a href=(format!("/configs?prefix={}", row.name)) { (row.component) ".*" }
                                        span.muted { " " (row.below) " below" }
                                        @if row.entry.is_some() { br; }
                                    }
                                    @if row.entry.is_some() { a href=(format!("/config/{}", row.name)) { (row.component) } }
                                }
                                @if let Some(entry) = &row.entry { (entry_cells(entry)) } @else { td colspan="5" {} }
                            }
                        }
                    }
                }
                @if total > rows.len() { p.muted { "Showing " (rows.len()) " of " (total) "; search to narrow." } }
            }
            (freshness(&state))
        },
    ))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    content: Option<String>,
}

/// `/search?q=…&content=on`: names holding the text, then contents.
pub async fn search(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Query(query): Query<SearchQuery>,
) -> Result<Markup, PageError> {
    state.catalog.ensure_loaded().await?;
    let in_content = query.content.is_some() || query.q.is_empty();
    let (hits, total) = state.catalog.search(
        &query.q,
        in_content,
        |name| who.may(name, Role::Viewer),
        MAX_HITS,
    );
    Ok(page(
        &who,
        "Search",
        html! {
            h1 { "Search" }
            form method="get" action="/search" {
                div.actions {
                    input #q type="search" name="q" value=(query.q) placeholder="name or content, e.g. 203.0.113.7" aria-label="Search"
                        hx-get="/search" hx-trigger="input changed delay:300ms" hx-target="#results" hx-select="#results"
                        hx-swap="outerHTML" hx-include="closest form" hx-push-url="true";
                    label { input type="checkbox" name="content" checked[in_content]; " in contents too" }
                    button type="submit" { "Search" }
                }
            }
            div #results {
                @if !query.q.trim().is_empty() {
                    p.muted { (total) " matching" @if total > hits.len() { ", showing " (hits.len()) } "." }
                    @if !hits.is_empty() {
                        table {
                            thead { tr { th { "name" } th { "match" } th { "kind" } th { "version" } th { "size" } th { "author" } th { "time" } } }
                            tbody {
                                @for hit in &hits {
                                    tr {
                                        td { (config_link(&hit.entry.name)) }
                                        td {
                                            @if hit.in_name { span.muted { "name" } }
                                            @if let Some(snippet) = &hit.snippet { @if hit.in_name { br; } code { (snippet) } }
                                        }
                                        (entry_cells(&hit.entry))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (freshness(&state))
        },
    ))
}
