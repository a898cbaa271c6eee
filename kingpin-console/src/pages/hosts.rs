//! Who has which version: every reporting host, and each host's page.

use std::sync::Arc;

use axum::extract::{Path, State};
use maud::{html, Markup};

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::pages::layout::{config_link, page};
use crate::{when, AppState};

/// Whether a host's version is older than the catalog's current one.
fn behind(version: Option<u64>, current: Option<u64>) -> bool {
    matches!((version, current), (Some(v), Some(c)) if v < c)
}

/// `/hosts`: every host that reports, with what is behind or failing.
pub async fn list(State(state): State<Arc<AppState>>, who: SignedIn) -> Result<Markup, PageError> {
    if who.best_role().is_none() {
        return Err(PageError::forbidden(format!(
            "{} has no role anywhere",
            who.user
        )));
    }
    state.catalog.ensure_loaded().await?;
    let hosts = state.hosts.hosts();
    Ok(page(
        &who,
        "Hosts",
        html! {
            h1 { "Hosts" }
            p.muted { (hosts.len()) " hosts report what they synced (monitors with report_status = true)." }
            table #hosts {
                thead { tr { th { "host" } th { "entries" } th { "behind" } th { "failing" } th { "reported" } } }
                tbody {
                    @for h in &hosts {
                        @let visible: Vec<_> = h.entries.iter().filter(|e| who.may(&e.name, Role::Viewer)).collect();
                        @let failing = visible.iter().filter(|e| e.error.is_some()).count();
                        @let current = state.catalog.versions(visible.iter().map(|e| e.name.as_str()));
                        @let late = visible.iter().zip(&current).filter(|(e, c)| behind(e.version, **c)).count();
                        tr {
                            td { a href=(format!("/host/{}", h.host)) { (h.host) } }
                            td { (visible.len()) }
                            td { @if late > 0 { span.badge-behind { (late) } } @else { "0" } }
                            td { @if failing > 0 { span.badge-bad { (failing) } } @else { "0" } }
                            td { (when(h.reported_ms)) }
                        }
                    }
                }
            }
        },
    ))
}

/// `/host/{host}`: what one host has, entry by entry.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(host): Path<String>,
) -> Result<Markup, PageError> {
    let host = kingpin_api::environment::HostId::parse(&host)
        .map_err(|e| PageError::invalid(e.message().to_owned()))?;
    state.catalog.ensure_loaded().await?;
    let report = state.hosts.host(host.as_str()).ok_or_else(|| {
        PageError::not_found(format!(
            "host {} does not report (or its monitor stopped)",
            host.as_str()
        ))
    })?;
    let entries: Vec<_> = report
        .entries
        .iter()
        .filter(|e| who.may(&e.name, Role::Viewer))
        .collect();
    let currents = state
        .catalog
        .versions(entries.iter().map(|e| e.name.as_str()));
    Ok(page(
        &who,
        host.as_str(),
        html! {
            div.crumbs { a href="/hosts" { "hosts" } }
            h1 { (host.as_str()) }
            p.muted { "Reported " (when(report.reported_ms)) "." @if report.truncated > 0 { " " (report.truncated) " entries left out of the report (too many)." } }
            table #entries {
                thead { tr { th { "name" } th { "version on disk" } th { "current" } th { "last sync" } th { "state" } } }
                tbody {
                    @for (e, current) in entries.iter().zip(&currents) {
                        @let current = *current;
                        tr {
                            td { @if e.name.starts_with("discovery.") { a href=(format!("/serverset/{}", e.name)) { (e.name) } } @else { (config_link(&e.name)) } }
                            td { (e.version.map(|v| v.to_string()).unwrap_or_default()) }
                            td { (current.map(|v| v.to_string()).unwrap_or_default()) }
                            td { (when(e.synced_ms.unwrap_or(0))) }
                            td {
                                @if let Some(error) = &e.error { span.badge-bad { "failing: " (error) } }
                                @else if behind(e.version, current) { span.badge-behind { "behind" } }
                                @else { "in sync" }
                            }
                        }
                    }
                }
            }
        },
    ))
}
