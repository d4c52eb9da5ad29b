//! Service endpoints: liveness, readiness, version, metrics and the OpenAPI document. They need
//! no token, so probes and scrapers work without credentials.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(version))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", security(()), responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    /// "ready", or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    checks: Checks,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Checks {
    /// "ok" or the reason the database does not answer.
    database: String,
    /// "ok" or why no KMS master key is loaded.
    kms: String,
}

/// Readiness: 200 only when the database answers and the KMS master key is loaded.
#[utoipa::path(get, path = "/readyz", tag = "service", security(()), responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready; `error` says why", body = Readiness),
))]
async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(_)) => "database does not answer".to_owned(),
        Err(_) => "database did not answer within 2s".to_owned(),
    };
    let kms = match state.kms {
        Some(_) => "ok".to_owned(),
        None => "no KMS master key loaded (set KUBEOP_KMS_MASTER_KEY)".to_owned(),
    };
    let problems: Vec<&str> =
        [&database, &kms].into_iter().filter(|c| *c != "ok").map(String::as_str).collect();
    let ready = problems.is_empty();
    let body = Readiness {
        status: ready.then(|| "ready".to_owned()),
        error: (!ready).then(|| format!("not ready: {}", problems.join("; "))),
        checks: Checks { database, kms },
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// What `/version` reports: the build of the running binary.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    #[schema(example = "manager")]
    pub service: &'static str,
    pub version: &'static str,
    /// The commit the binary was built from (`-dirty` when the tree had uncommitted changes).
    pub git_commit: &'static str,
    /// When the binary was built, RFC 3339 UTC.
    pub build_date: &'static str,
}

impl BuildInfo {
    /// A build that was not stamped (the library run by tests and benchmarks).
    pub fn unstamped() -> Self {
        Self {
            service: "manager",
            version: env!("CARGO_PKG_VERSION"),
            git_commit: "unknown",
            build_date: "unknown",
        }
    }
}

/// The build: `{service, version, gitCommit, buildDate}`.
#[utoipa::path(get, path = "/version", tag = "service", security(()), responses((status = 200, description = "The build", body = BuildInfo)))]
async fn version(State(state): State<AppState>) -> axum::Json<BuildInfo> {
    axum::Json(state.build)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "service", security(()), responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()), responses(
    (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object),
))]
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.to_string())
}
