//! The frame of every page, and the small pieces pages share.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::auth::{SignedIn, CSRF_FIELD};

/// The pinned htmx, served from the binary (license alongside in
/// `assets/htmx-LICENSE.txt`).
pub const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.11.min.js");
/// Where pages load it from; the version in the path lets browsers cache
/// it forever.
pub const HTMX_PATH: &str = "/assets/htmx-2.0.11.min.js";
/// The stylesheet.
pub const CSS: &[u8] = include_bytes!("../../assets/console.css");
/// Where pages load it from.
pub const CSS_PATH: &str = "/assets/console.css";

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx adds no inline styles, so the page's CSP can forbid them.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false}"#;
            title { (title) " · kingpin" }
            link rel="stylesheet" href=(CSS_PATH);
            script src=(HTMX_PATH) defer {}
        }
    }
}

/// A page with the navigation bar, for the signed-in `who`.
pub fn page(who: &SignedIn, title: &str, body: Markup) -> Markup {
    let headers = format!(r#"{{"X-CSRF-Token": "{}"}}"#, who.csrf);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=(headers) {
                header {
                    a.brand href="/" { "kingpin" }
                    a href="/configs" { "Configs" }
                    a href="/search" { "Search" }
                    a href="/environments" { "Environments" }
                    a href="/decider" { "Decider" }
                    a href="/serversets" { "Serversets" }
                    a href="/dependencies" { "Dependencies" }
                    a href="/hosts" { "Hosts" }
                    a href="/approvals" { "Approvals" }
                    span.who {
                        span { (who.user) @if let Some(role) = who.best_role() { " (" (role) ")" } }
                        @if who.can_sign_out {
                            form method="post" action="/signout" {
                                (csrf_field(who))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page without navigation (errors, sign-in).
pub fn bare(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header { a.brand href="/" { "kingpin" } }
                main {
                    h1 { (title) }
                    p.notice.error role="alert" { (message) }
                    p { a href="javascript:history.back()" { "Back" } " · " a href="/" { "Home" } }
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(who: &SignedIn) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(who.csrf); }
}

/// A link to a config's page.
pub fn config_link(name: &str) -> Markup {
    html! { a href=(format!("/config/{name}")) { (name) } }
}

/// Breadcrumbs for a config name: each prefix links to its tree.
pub fn crumbs(name: &str) -> Markup {
    let parts: Vec<&str> = name.split('.').collect();
    html! {
        div.crumbs {
            a href="/configs" { "configs" }
            @for i in 0..parts.len().saturating_sub(1) {
                " . "
                a href=(format!("/configs?prefix={}", parts[..=i].join("."))) { (parts[i]) }
            }
        }
    }
}

/// Bytes in a short human form.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// A static asset with long caching.
pub fn asset(bytes: &'static [u8], content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response()
}
