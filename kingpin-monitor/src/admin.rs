//! The admin HTTP server: health, what is watched, per-entry state, and
//! Prometheus metrics. It binds to loopback unless configured otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kingpin_api::metaconfig::MetaConfigKind;
use kingpin_api::ConfigName;

use crate::metrics::Metrics;
use crate::state::{EntryStatus, MonitorState};

#[derive(Clone)]
struct Admin {
    state: Arc<MonitorState>,
    metrics: Arc<Metrics>,
}

/// The admin routes.
pub fn router(state: Arc<MonitorState>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/admin/ping", get(|| async { "pong" }))
        .route("/admin/healthcheck", get(healthcheck))
        .route("/admin/watched_metaconfigs", get(watched_metaconfigs))
        .route("/admin/watched_dependencies", get(watched_dependencies))
        .route("/config", get(configs))
        .route("/config/{name}", get(config))
        .route("/serverset", get(serversets))
        .route("/serverset/{name}", get(serverset))
        .route("/environment", get(environments))
        .route("/environment/{name}", get(environment))
        .route("/metrics", get(metrics_text))
        .with_state(Admin { state, metrics })
}

async fn healthcheck(State(admin): State<Admin>) -> Response {
    let health = admin.state.health();
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn watched_metaconfigs(State(admin): State<Admin>) -> Json<Vec<String>> {
    Json(
        admin
            .state
            .entries()
            .into_keys()
            .map(|n| n.to_string())
            .collect(),
    )
}

async fn watched_dependencies(State(admin): State<Admin>) -> Json<Vec<String>> {
    Json(
        admin
            .state
            .dependencies()
            .into_iter()
            .map(|n| n.to_string())
            .collect(),
    )
}

fn of_kind(admin: &Admin, kind: MetaConfigKind) -> BTreeMap<String, EntryStatus> {
    admin
        .state
        .entries()
        .into_iter()
        .filter(|(_, e)| e.kind == Some(kind))
        .map(|(n, e)| (n.to_string(), e))
        .collect()
}

fn one_of_kind(admin: &Admin, kind: MetaConfigKind, name: &str) -> Response {
    let entry = ConfigName::parse(name)
        .ok()
        .and_then(|n| admin.state.entry(&n))
        .filter(|e| e.kind == Some(kind));
    match entry {
        Some(entry) => Json(entry).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("{name} is not a watched {kind}\n"),
        )
            .into_response(),
    }
}

async fn configs(State(admin): State<Admin>) -> Json<BTreeMap<String, EntryStatus>> {
    Json(of_kind(&admin, MetaConfigKind::Config))
}

async fn config(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    one_of_kind(&admin, MetaConfigKind::Config, &name)
}

async fn serversets(State(admin): State<Admin>) -> Json<BTreeMap<String, EntryStatus>> {
    Json(of_kind(&admin, MetaConfigKind::Serverset))
}

async fn serverset(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    one_of_kind(&admin, MetaConfigKind::Serverset, &name)
}

async fn environments(State(admin): State<Admin>) -> Json<BTreeMap<String, EntryStatus>> {
    Json(of_kind(&admin, MetaConfigKind::Environment))
}

async fn environment(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    one_of_kind(&admin, MetaConfigKind::Environment, &name)
}

async fn metrics_text(State(admin): State<Admin>) -> Response {
    admin
        .metrics
        .staleness
        .set(admin.state.staleness().as_secs_f64());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        admin.metrics.encode(),
    )
        .into_response()
}
