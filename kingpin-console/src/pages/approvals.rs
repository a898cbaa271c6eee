//! Proposals: the list, one proposal's diff, and publishing or rejecting
//! it (by another user than its author).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use kingpin_api::{ChangeInfo, ErrorKind};
use maud::{html, Markup};

use crate::approvals::{ProposalState, StoredProposal};
use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::error::PageError;
use crate::form::FormData;
use crate::pages::config_name;
use crate::pages::layout::{config_link, csrf_field, page};
use crate::writes::{write_checked, Written};
use crate::{diff, when, AppState};

/// `/approvals`: open proposals first, then decided ones.
pub async fn list(State(state): State<Arc<AppState>>, who: SignedIn) -> Result<Markup, PageError> {
    let all = state.approvals.list().await?;
    let visible: Vec<&StoredProposal> = all
        .iter()
        .filter(|p| who.may(&p.proposal.config, Role::Viewer))
        .collect();
    let (open, decided): (Vec<&StoredProposal>, Vec<&StoredProposal>) = visible
        .into_iter()
        .partition(|p| p.proposal.state == ProposalState::Open);
    let table = |rows: &[&StoredProposal]| {
        html! {
            table {
                thead { tr { th { "proposal" } th { "config" } th { "base" } th { "author" } th { "message" } th { "time" } th { "state" } } }
                tbody { @for p in rows {
                    tr {
                        td { a href=(format!("/approval/{}", p.id)) { (p.id) } }
                        td { (config_link(&p.proposal.config)) }
                        td { (p.proposal.base_version) }
                        td { (p.proposal.author) }
                        td { (p.proposal.message) }
                        td { (when(p.proposal.created_ms)) }
                        td { (p.proposal.state.as_str()) @if let Some(by) = &p.proposal.decided_by { " by " (by) } }
                    }
                } }
            }
        }
    };
    Ok(page(
        &who,
        "Approvals",
        html! {
            h1 { "Approvals" }
            p.muted { "Changes under these prefixes need another user's approval: "
                @for p in &state.settings.approvals { code { (if p.is_empty() { "(everything)" } else { p }) } " " }
                @if state.settings.approvals.is_empty() { "none." }
            }
            h2 { "Open" }
            @if open.is_empty() { p.muted { "Nothing waits for review." } } @else { div #open { (table(&open)) } }
            h2 { "Decided" }
            @if decided.is_empty() { p.muted { "None yet." } } @else { (table(&decided)) }
        },
    ))
}

/// `/approval/{id}`: the proposed change as a diff against its base, and
/// what changed since, if anything.
pub async fn show(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let stored = state.approvals.get(&id).await?;
    let p = &stored.proposal;
    let name = config_name(&p.config)?;
    who.require(name.as_str(), Role::Viewer)?;
    let proposed = state.approvals.content(p).await?;
    let base = match state.store.record_at(&name, p.base_version).await? {
        Some(record) if p.base_version > 0 => state.store.content(&name, &record).await?,
        _ => Bytes::new(),
    };
    let current = state.store.read(&name).await?;
    let current_version = current.as_ref().map_or(0, |c| c.record.version);
    let stale = p.state == ProposalState::Open && current_version != p.base_version;
    let (markup, added, removed) = diff::render(&base, &proposed);
    let may_decide = p.state == ProposalState::Open
        && who.may(name.as_str(), Role::Approver)
        && who.user != p.author;
    let may_withdraw = p.state == ProposalState::Open && who.user == p.author;
    Ok(page(
        &who,
        &format!("Proposal {id}"),
        html! {
            div.crumbs { a href="/approvals" { "approvals" } }
            h1 { "Proposal " (id) " for " (config_link(name.as_str())) }
            p #state { "By " (p.author) ", " (when(p.created_ms)) ": " (p.message) ". State: " strong { (p.state.as_str()) }
                @if let Some(by) = &p.decided_by { " by " (by) }
                @if let Some(v) = p.published_version { " as version " (v) } }
            p.muted { "Against version " (p.base_version) ": +" (added) " −" (removed) " lines." }
            @if stale {
                p.notice.warn #stale { "Stale: " (name) " is at version " (current_version) " now, not " (p.base_version) ". Publishing would be refused; the author can propose again." }
            }
            div #diff { (markup) }
            @if may_decide || may_withdraw {
                div.actions {
                    @if may_decide {
                        form.inline method="post" action=(format!("/approval/{id}/publish")) {
                            (csrf_field(&who)) button #publish type="submit" { "Approve and publish" }
                        }
                    }
                    form.inline method="post" action=(format!("/approval/{id}/reject")) {
                        (csrf_field(&who)) button.secondary #reject type="submit" { @if may_withdraw { "Withdraw" } @else { "Reject" } }
                    }
                }
            } @else if p.state == ProposalState::Open && who.user == p.author {
                p.muted { "Another user with the approver role publishes it." }
            }
        },
    ))
}

fn decided_elsewhere(id: &str) -> PageError {
    PageError::new(
        StatusCode::CONFLICT,
        format!("proposal {id} was decided by someone else meanwhile"),
    )
}

/// `POST /approval/{id}/publish`: by an approver who is not the author; a
/// compare-and-set against the proposal's base.
pub async fn publish(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let stored = state.approvals.get(&id).await?;
    let p = &stored.proposal;
    let name = config_name(&p.config)?;
    who.require(name.as_str(), Role::Approver)?;
    if who.user == p.author {
        return Err(PageError::forbidden(
            "a proposal is published by another user than its author; nothing was changed",
        ));
    }
    if p.state != ProposalState::Open {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            format!("proposal {id} is {} already", p.state.as_str()),
        ));
    }
    let content = state.approvals.content(p).await?;
    let change = ChangeInfo::new(
        p.author.clone(),
        format!("{} (approved by {})", p.message, who.user),
    );
    match write_checked(&state, &name, content, p.base_version, &change).await? {
        Written::Version(version) => {
            match state.approvals.decide(&stored, ProposalState::Published, &who.user, Some(version)).await {
                Err(e) if e.kind() == ErrorKind::BadVersion => return Err(decided_elsewhere(&id)),
                other => other?,
            }
            tracing::info!(user = %who.user, config = %name, proposal = %id, version, "published");
            Ok(Redirect::to(&format!("/config/{name}?saved={version}")).into_response())
        }
        Written::Conflict => Err(PageError::new(
            StatusCode::CONFLICT,
            format!("{name} is no longer at version {} (the proposal's base): a stale proposal is not published; nothing was written", p.base_version),
        )),
    }
}

/// `POST /approval/{id}/reject`: rejected by an approver, or withdrawn by
/// its author.
pub async fn reject(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let stored = state.approvals.get(&id).await?;
    let p = &stored.proposal;
    let new_state = if who.user == p.author {
        ProposalState::Withdrawn
    } else {
        who.require(&p.config, Role::Approver)?;
        ProposalState::Rejected
    };
    if p.state != ProposalState::Open {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            format!("proposal {id} is {} already", p.state.as_str()),
        ));
    }
    match state
        .approvals
        .decide(&stored, new_state, &who.user, None)
        .await
    {
        Err(e) if e.kind() == ErrorKind::BadVersion => return Err(decided_elsewhere(&id)),
        other => other?,
    }
    Ok(Redirect::to(&format!("/approval/{id}")).into_response())
}
