//! The operator process's own endpoints: `/healthz` (alive), `/readyz` (a leader with synced
//! caches, or a standby), `/version` and `/metrics` (Prometheus text).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::leader;

/// What `/version` reports (the binary stamps it).
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub service: &'static str,
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
}

#[derive(Clone)]
struct Served {
    state: Arc<leader::State>,
    registry: prometheus::Registry,
    version: Version,
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<leader::State>,
    registry: prometheus::Registry,
    version: Version,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/version", get(|State(served): State<Served>| async move { axum::Json(served.version) }))
        .route("/metrics", get(metrics))
        .with_state(Served { state, registry, version });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn readyz(State(served): State<Served>) -> impl IntoResponse {
    if served.state.ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

async fn metrics(State(served): State<Served>) -> impl IntoResponse {
    let leading = served.state.leading.load(std::sync::atomic::Ordering::SeqCst);
    let mut text = prometheus::TextEncoder::new()
        .encode_to_string(&served.registry.gather())
        .unwrap_or_else(|error| format!("# metrics could not be encoded: {error}\n"));
    text.push_str(
        "# HELP kubeop_operator_leader Whether this replica holds the lease and runs the controllers.\n",
    );
    text.push_str("# TYPE kubeop_operator_leader gauge\n");
    text.push_str(&format!("kubeop_operator_leader {}\n", u8::from(leading)));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
