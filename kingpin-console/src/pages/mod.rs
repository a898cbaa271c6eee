//! The pages and actions, and the router that serves them.
//!
//! | URL | what |
//! |---|---|
//! | `/configs?prefix=P` | the tree of configs under a prefix |
//! | `/search?q=Q&content=on` | search by name and content |
//! | `/config/{name}` | a config: content, record, hosts on each version |
//! | `/config/{name}/edit`, `/review`, `/save` | edit, review the diff, save (compare-and-set) |
//! | `/config/{name}/history`, `/version/{v}`, `/diff?from=&to=` | history and diffs |
//! | `/config/{name}/rollback?version=V` | roll back, after confirming |
//! | `/new` | create a config |
//! | `/environments`, `/environments/{service}?env=/a/b` | environments |
//! | `/decider`, `/serversets`, `/serverset/{name}`, `/dependencies`, `/dependency/{name}` | flags, serversets, dependencies |
//! | `/hosts`, `/host/{host}` | who has which version |
//! | `/approvals`, `/approval/{id}` | proposals: review, publish, reject |
//! | `/signin`, `/signout` | sessions |

mod approvals;
mod browse;
mod config;
mod discovery;
mod edit;
mod editor_form;
mod environments;
mod hosts;
pub mod layout;
mod rollback;
mod signin;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/configs") }))
        .route(
            layout::HTMX_PATH,
            get(|| async { layout::asset(layout::HTMX, "text/javascript") }),
        )
        .route(
            layout::CSS_PATH,
            get(|| async { layout::asset(layout::CSS, "text/css") }),
        )
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/configs", get(browse::tree))
        .route("/search", get(browse::search))
        .route("/new", get(edit::new_form))
        .route("/config/{name}", get(config::show))
        .route(
            "/config/{name}/edit",
            get(edit::edit).post(edit::edit_again),
        )
        .route("/config/{name}/review", post(edit::review))
        .route("/config/{name}/save", post(edit::save))
        .route("/config/{name}/history", get(config::history))
        .route("/config/{name}/version/{version}", get(config::version))
        .route("/config/{name}/diff", get(config::diff))
        .route(
            "/config/{name}/rollback",
            get(rollback::confirm).post(rollback::roll_back),
        )
        .route("/environments", get(environments::services))
        .route("/environments/{service}", get(environments::show))
        .route("/decider", get(discovery::decider))
        .route("/serversets", get(discovery::serversets))
        .route("/serverset/{name}", get(discovery::serverset))
        .route("/dependencies", get(discovery::dependencies))
        .route("/dependency/{name}", get(discovery::dependency))
        .route("/hosts", get(hosts::list))
        .route("/host/{host}", get(hosts::show))
        .route("/approvals", get(approvals::list))
        .route("/approval/{id}", get(approvals::show))
        .route("/approval/{id}/publish", post(approvals::publish))
        .route("/approval/{id}/reject", post(approvals::reject))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every response: no framing, no inline script or style, no
/// sniffing, no caching of pages that show configs.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A config name from a URL, checked before any I/O: 422 otherwise.
pub fn config_name(name: &str) -> Result<kingpin_api::ConfigName, crate::PageError> {
    kingpin_api::ConfigName::parse(name)
        .map_err(|e| crate::PageError::invalid(e.message().to_owned()))
}
