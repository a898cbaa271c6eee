//! Rolling a config back to an old version, after confirming the diff.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use kingpin_api::ChangeInfo;
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::form::FormData;
use crate::pages::config_name;
use crate::pages::layout::{crumbs, csrf_field, page};
use crate::writes::{write_checked, Written};
use crate::{diff, AppState};

#[derive(Deserialize)]
pub struct Version {
    version: u64,
}

/// `GET /config/{name}/rollback?version=V`: what rolling back changes,
/// and a confirmation.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    Query(Version { version }): Query<Version>,
) -> Result<Markup, PageError> {
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Editor)?;
    let current = state
        .store
        .read(&name)
        .await?
        .ok_or_else(|| PageError::not_found(format!("config {name} does not exist")))?;
    let old = state
        .store
        .record_at(&name, version)
        .await?
        .ok_or_else(|| PageError::not_found(format!("{name} has no version {version}")))?;
    let content = state.store.content(&name, &old).await?;
    let (markup, added, removed) = diff::render(&current.content, &content);
    let proposal = state.approvals.required(name.as_str());
    Ok(page(
        &who,
        &format!("Roll back {name}"),
        html! {
            (crumbs(name.as_str()))
            h1 { "Roll back " a href=(format!("/config/{name}")) { (name) } " to version " (version) }
            p.notice.warn { "This writes version " (version) "'s content as a new version after " (current.record.version) ". +" (added) " −" (removed) " lines:" }
            (markup)
            form method="post" action=(format!("/config/{name}/rollback")) {
                (csrf_field(&who))
                input type="hidden" name="version" value=(version);
                input type="hidden" name="base" value=(current.record.version);
                p { label for="message" { "Message" } br;
                    input #message type="text" name="message" size="80" required value=(format!("roll back to version {version}")); }
                div.actions {
                    button.danger #confirm type="submit" { @if proposal { "Propose the rollback" } @else { "Roll back" } }
                    a.button.secondary href=(format!("/config/{name}/history")) { "Cancel" }
                }
            }
        },
    ))
}

/// `POST /config/{name}/rollback`: compare-and-set against the version
/// the confirmation showed.
pub async fn roll_back(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let name = config_name(&name)?;
    who.require(name.as_str(), Role::Editor)?;
    let version = form.version("version")?;
    let base = form.version("base")?;
    let message = form.get("message").unwrap_or_default().trim().to_owned();
    if message.is_empty() {
        return Err(PageError::invalid(
            "a message saying why is required; nothing was changed",
        ));
    }
    let old = state
        .store
        .record_at(&name, version)
        .await?
        .ok_or_else(|| PageError::not_found(format!("{name} has no version {version}")))?;
    let content = state.store.content(&name, &old).await?;
    if state.approvals.required(name.as_str()) {
        let id = state
            .approvals
            .propose(name.as_str(), base, content, &who.user, &message)
            .await?;
        return Ok(Redirect::to(&format!("/config/{name}?proposed={id}")).into_response());
    }
    let change = ChangeInfo::new(who.user.clone(), message);
    match write_checked(&state, &name, content, base, &change).await? {
        Written::Version(v) => {
            tracing::info!(user = %who.user, config = %name, from = version, to = v, "rolled back");
            Ok(Redirect::to(&format!("/config/{name}?saved={v}")).into_response())
        }
        Written::Conflict => Err(PageError::new(
            axum::http::StatusCode::CONFLICT,
            format!("{name} changed after the confirmation was shown (it is no longer at version {base}); nothing was written: look at the history again"),
        )),
    }
}
