//! Editing a config: the form, the review of the diff with a message, the
//! compare-and-set save, and the conflict view that keeps the user's edit.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use kingpin_api::{ChangeInfo, Config, ConfigName};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::roles::Role;
use crate::auth::SignedIn;
use crate::editors::{Editor, ItemType};
use crate::error::PageError;
use crate::form::FormData;
use crate::kind::{infer_kind, kind_by_name, ConfigKind};
use crate::pages::config_name;
use crate::pages::editor_form::editor_form;
use crate::pages::layout::{crumbs, csrf_field, page};
use crate::writes::{write_checked, Written};
use crate::{diff, when, AppState};

#[derive(Deserialize)]
pub struct NewQuery {
    name: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    prefix: String,
}

/// `/new`: pick a name and a kind; then the editor of the new config.
pub async fn new_form(who: SignedIn, Query(query): Query<NewQuery>) -> Result<Response, PageError> {
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) {
        let name = config_name(name)?;
        who.require(name.as_str(), Role::Editor)?;
        let kind = query.kind.unwrap_or_else(|| "json".into());
        return Ok(Redirect::to(&format!("/config/{name}/edit?kind={kind}")).into_response());
    }
    let start = if query.prefix.is_empty() {
        String::new()
    } else {
        format!("{}.", query.prefix)
    };
    Ok(page(
        &who,
        "New config",
        html! {
            h1 { "New config" }
            form method="get" action="/new" {
                p { label for="name" { "Name" } br; input.mono #name type="text" name="name" value=(start) size="60" required; }
                p { label for="kind" { "Kind" } br;
                    select #kind name="kind" { @for k in ConfigKind::CREATABLE { option value=(k.as_str()) { (k.as_str()) } } }
                }
                button type="submit" { "Continue" }
            }
        },
    )
    .into_response())
}

/// The current config and how it is edited: the kind (and item type) the
/// server decides from the stored content, never the form's word for an
/// existing config.
struct Target {
    name: ConfigName,
    current: Option<Config>,
    kind: ConfigKind,
    stored: Option<Editor>,
}

async fn target(
    state: &AppState,
    who: &SignedIn,
    name: &str,
    requested: Option<&str>,
) -> Result<Target, PageError> {
    let name = config_name(name)?;
    who.require(name.as_str(), Role::Editor)?;
    let current = state.store.read(&name).await?;
    let kind = match (&current, kind_by_name(name.as_str())) {
        (_, Some(kind)) => kind,
        (Some(config), None) => infer_kind(name.as_str(), &config.content),
        (None, None) => requested
            .and_then(ConfigKind::parse)
            .filter(|k| ConfigKind::CREATABLE.contains(k))
            .unwrap_or(ConfigKind::Json),
    };
    if kind == ConfigKind::EnvironmentView {
        return Err(PageError::invalid(
            "an environment's view is derived from its environments: edit those instead",
        ));
    }
    let stored = match &current {
        Some(config) => {
            Some(Editor::from_content(kind, &config.content).map_err(PageError::invalid)?)
        }
        None => None,
    };
    Ok(Target {
        name,
        current,
        kind,
        stored,
    })
}

impl Target {
    fn base(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.record.version)
    }

    fn content(&self) -> Bytes {
        self.current
            .as_ref()
            .map(|c| c.content.clone())
            .unwrap_or_default()
    }

    /// The user's editor from `form`, with the stored items' type when
    /// the config has items (a list of numbers stays one).
    fn edited(&self, form: &FormData) -> Editor {
        let mut editor = Editor::from_form(self.kind, form);
        if let Some(stored) = &self.stored {
            let has_items = stored.rows.iter().any(|r| !r.value.is_empty());
            if has_items && self.kind.is_table() {
                editor.item_type = stored.item_type;
            }
        }
        editor
    }
}

#[derive(Deserialize)]
pub struct EditQuery {
    kind: Option<String>,
}

fn edit_page(
    who: &SignedIn,
    target: &Target,
    editor: &Editor,
    base: u64,
    blanks: usize,
    error: Option<&str>,
) -> Markup {
    let name = target.name.as_str();
    page(
        who,
        &format!("Edit {name}"),
        html! {
            (crumbs(name))
            h1 { "Edit " a href=(format!("/config/{name}")) { (name) } " " span.kind { (editor.kind) } }
            p.muted {
                @if base == 0 { "A new config." } @else { "Editing version " (base) ". Saving checks that nobody saved another version meanwhile." }
            }
            (editor_form(who, name, editor, base, blanks, error))
        },
    )
}

/// `GET /config/{name}/edit`: the editor of the current version.
pub async fn edit(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    Query(query): Query<EditQuery>,
) -> Result<Markup, PageError> {
    let target = target(&state, &who, &name, query.kind.as_deref()).await?;
    let editor = match &target.stored {
        Some(editor) => editor.clone(),
        None => Editor::from_content(target.kind, b"").map_err(PageError::invalid)?,
    };
    Ok(edit_page(&who, &target, &editor, target.base(), 1, None))
}

/// `POST /config/{name}/edit`: the editor again, as the user left it
/// (adding a row, or back from the review).
pub async fn edit_again(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    form: FormData,
) -> Result<Markup, PageError> {
    who.check_csrf(&form)?;
    let target = target(&state, &who, &name, form.get("kind")).await?;
    let base = form.version("base")?;
    let (editor, blanks) = match form.get("blanks") {
        // The table form itself: one more row.
        Some(blanks) => (
            target.edited(&form),
            blanks.parse::<usize>().unwrap_or(1).min(50) + 1,
        ),
        // Back from the review: the content it carried.
        None => {
            let content = form.get("content").unwrap_or_default();
            let mut editor = Editor::from_content(target.kind, content.as_bytes())
                .map_err(PageError::invalid)?;
            if target.kind.is_table() && form.get("item_type").is_some() {
                editor.item_type = target.edited(&form).item_type;
            }
            (editor, 1)
        }
    };
    Ok(edit_page(&who, &target, &editor, base, blanks, None))
}

/// A message for the change: required, one line.
fn message(form: &FormData) -> Result<String, PageError> {
    let message = form.get("message").unwrap_or_default().trim();
    if message.is_empty() {
        return Err(PageError::invalid(
            "a message saying why is required; nothing was saved",
        ));
    }
    Ok(message.lines().collect::<Vec<_>>().join(" "))
}

/// `POST /config/{name}/review`: the diff against the current version and
/// a message; or the editor again with what was wrong.
pub async fn review(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let target = target(&state, &who, &name, form.get("kind")).await?;
    let base = form.version("base")?;
    let editor = if form.get("blanks").is_some() || !target.kind.is_table() {
        target.edited(&form)
    } else {
        // A conflict view sends the content itself.
        Editor::from_content(
            target.kind,
            form.get("content").unwrap_or_default().as_bytes(),
        )
        .map_err(PageError::invalid)?
    };
    let content = match editor.to_content() {
        Ok(content) => content,
        Err(error) => {
            let page = edit_page(&who, &target, &editor, base, 1, Some(&error));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    if target.base() != base {
        return Ok(conflict(&state, &who, &target, base, &content)
            .await?
            .into_response());
    }
    Ok(review_page(&state, &who, &target, &content, None).into_response())
}

fn review_page(
    state: &AppState,
    who: &SignedIn,
    target: &Target,
    content: &Bytes,
    error: Option<&str>,
) -> Markup {
    let name = target.name.as_str();
    let (markup, added, removed) = diff::render(&target.content(), content);
    let proposal = state.approvals.required(name);
    page(
        who,
        &format!("Review {name}"),
        html! {
            (crumbs(name))
            h1 { "Review the change to " a href=(format!("/config/{name}")) { (name) } }
            @if let Some(error) = error { p.notice.error role="alert" { (error) } }
            p.muted { "Against version " (target.base()) " (current): +" (added) " −" (removed) " lines." }
            div #diff { (markup) }
            form method="post" action=(format!("/config/{name}/save")) {
                (csrf_field(who))
                input type="hidden" name="base" value=(target.base());
                input type="hidden" name="kind" value=(target.kind.as_str());
                input type="hidden" name="content" value=(String::from_utf8_lossy(content));
                @if proposal { p.notice.warn { "Changes to this config need approval: saving proposes it, and another user publishes it." } }
                p { label for="message" { "Message" } br; input #message type="text" name="message" size="80" required placeholder="why"; }
                p.muted { "Author: " (who.user) }
                div.actions {
                    button #save type="submit" { @if proposal { "Propose" } @else { "Save" } }
                    button.secondary type="submit" formaction=(format!("/config/{name}/edit")) formnovalidate { "Back to editing" }
                }
            }
        },
    )
}

/// What a user sees when someone saved another version after `base`:
/// what changed meanwhile, and their own edit, kept, to review again.
async fn conflict(
    state: &AppState,
    who: &SignedIn,
    target: &Target,
    base: u64,
    mine: &Bytes,
) -> Result<Response, PageError> {
    let name = target.name.as_str();
    let base_content = match state.store.record_at(&target.name, base).await? {
        Some(record) if base > 0 => state.store.content(&target.name, &record).await?,
        _ => Bytes::new(),
    };
    let current = target.content();
    let (meanwhile, _, _) = diff::render(&base_content, &current);
    let (mine_vs_current, _, _) = diff::render(&current, mine);
    let record = target.current.as_ref().map(|c| &c.record);
    let body = html! {
        (crumbs(name))
        h1 { "Conflict: " a href=(format!("/config/{name}")) { (name) } " changed while you edited" }
        p.notice.warn #conflict role="alert" {
            "You started from version " (base) "; "
            @if let Some(r) = record { "version " (r.version) " was saved by " (r.author) " at " (when(r.timestamp_ms)) ": " (r.message) "." }
            @else { "the config was deleted." }
            " Nothing was saved. Your edit is kept below."
        }
        h2 { "What changed meanwhile (" (base) " → " (target.base()) ")" }
        (meanwhile)
        h2 { "Your edit, against the current version" }
        (mine_vs_current)
        h2 { "Your edit" }
        pre.content #your-edit { (crate::editors::pretty(mine)) }
        form method="post" action=(format!("/config/{name}/review")) {
            (csrf_field(who))
            input type="hidden" name="base" value=(target.base());
            input type="hidden" name="kind" value=(target.kind.as_str());
            input type="hidden" name="content" value=(String::from_utf8_lossy(mine));
            div.actions {
                button #review-again type="submit" { "Review my edit against version " (target.base()) }
                button.secondary type="submit" formaction=(format!("/config/{name}/edit")) { "Edit it further" }
            }
        }
    };
    Ok((
        StatusCode::CONFLICT,
        page(who, &format!("Conflict on {name}"), body),
    )
        .into_response())
}

/// `POST /config/{name}/save`: validates again, then writes with
/// compare-and-set against the version reviewed (or proposes, where
/// approvals are required).
pub async fn save(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    Path(name): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let target = target(&state, &who, &name, form.get("kind")).await?;
    let base = form.version("base")?;
    let submitted = form.require("content")?;
    // Never trust what the review page carried: validate it again.
    let content = validated(&target, submitted)
        .map_err(|e| PageError::invalid(format!("{e}; nothing was saved")))?;
    let message = match message(&form) {
        Ok(message) => message,
        Err(e) => {
            let page = review_page(&state, &who, &target, &content, Some(&e.message));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    if state.approvals.required(target.name.as_str()) {
        let id = state
            .approvals
            .propose(target.name.as_str(), base, content, &who.user, &message)
            .await?;
        tracing::info!(user = %who.user, config = %target.name, proposal = %id, "proposed a change");
        return Ok(Redirect::to(&format!("/config/{}?proposed={id}", target.name)).into_response());
    }
    let change = ChangeInfo::new(who.user.clone(), message);
    match write_checked(&state, &target.name, content.clone(), base, &change).await? {
        Written::Version(version) => {
            tracing::info!(user = %who.user, config = %target.name, version, "saved");
            Ok(Redirect::to(&format!("/config/{}?saved={version}", target.name)).into_response())
        }
        Written::Conflict => {
            let target = self::target(&state, &who, &name, form.get("kind")).await?;
            conflict(&state, &who, &target, base, &content).await
        }
    }
}

/// `submitted` checked as the config's kind: JSON that parses, a table
/// whose items all have the stored items' type; the bytes to write.
fn validated(target: &Target, submitted: &str) -> Result<Bytes, String> {
    let editor = Editor::from_content(target.kind, submitted.as_bytes())?;
    if let Some(stored) = &target.stored {
        let has_items = editor.rows.iter().any(|r| !r.value.is_empty());
        let stored_items = stored.rows.iter().any(|r| !r.value.is_empty());
        let fits = editor.item_type == stored.item_type
            || stored.item_type == ItemType::Json
            || (stored.item_type == ItemType::Float && editor.item_type == ItemType::Int);
        if target.kind.is_table()
            && target.kind != ConfigKind::Decider
            && has_items
            && stored_items
            && !fits
        {
            return Err(format!(
                "the items are {} but this config holds {} items",
                editor.item_type.as_str(),
                stored.item_type.as_str()
            ));
        }
    }
    let normalized = editor.to_content()?;
    Ok(match target.kind {
        // Kept as the user wrote it (validated above).
        ConfigKind::Json | ConfigKind::Text => Bytes::from(submitted.to_owned()),
        _ => normalized,
    })
}
