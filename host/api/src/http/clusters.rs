//! `/v1/clusters`: the Kubernetes clusters tenants can live on (admin only). A kubeconfig is
//! checked, sealed with the KMS (the cluster id as associated data) and never shown again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiErrors, BodyErrors, ClusterErrors, Result, invalid_field};
use super::extract::{Json, PageParams, PathId, Query};
use super::{AppState, Identified, paged};
use crate::auth::{self, Caller};
use kubeop_core::{Cluster, ClusterId, Name};
use kubeop_kube::ClusterStatus;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cluster, list_clusters))
        .routes(routes!(get_cluster, delete_cluster))
        .routes(routes!(get_cluster_status))
}

impl Identified for Cluster {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateCluster {
    #[serde(alias = "Name")]
    #[schema(value_type = Name, example = "prod-eu")]
    name: String,
    /// The kubeconfig YAML, base64-encoded. Its current context names the cluster and the
    /// credentials kubeop uses there; only inline credentials are accepted.
    #[serde(alias = "Kubeconfig")]
    #[schema(format = Byte)]
    kubeconfig: String,
}

/// A cluster's status, as `GET /v1/clusters/{id}/status` reports it.
#[derive(Serialize, utoipa::ToSchema)]
struct ClusterStatusAnswer {
    id: ClusterId,
    name: Name,
    #[serde(flatten)]
    status: ClusterStatus,
}

/// Register a cluster (admin). The cluster must answer: an unreachable one is refused (503).
#[utoipa::path(post, path = "/v1/clusters", tag = "clusters", request_body = CreateCluster,
    responses((status = 200, description = "The registered cluster", body = Cluster), ApiErrors, BodyErrors, ClusterErrors))]
async fn create_cluster(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateCluster>,
) -> Result<axum::Json<Cluster>> {
    auth::require_admin(&caller)?;
    let name = Name::parse(&body.name).map_err(invalid_field("name"))?;
    let yaml = BASE64
        .decode(body.kubeconfig.trim())
        .map_err(|_| ApiError::BadRequest("kubeconfig: not base64 (send the YAML base64-encoded)".into()))?;
    let yaml =
        String::from_utf8(yaml).map_err(|_| ApiError::BadRequest("kubeconfig: not UTF-8 text".into()))?;
    let (config, server) = kubeop_kube::parse_kubeconfig(&yaml).await?;
    let kms = state.kms.as_ref().ok_or_else(|| {
        ApiError::Unavailable("no KMS master key is configured: cluster credentials cannot be stored".into())
    })?;
    // Registering a cluster nobody can reach is a typo more often than a plan.
    kubeop_kube::clusters::probe(config, name.as_str(), state.kube_settings.request_timeout_ms).await?;
    let id = ClusterId::generate();
    let sealed = kms.seal(yaml.as_bytes(), id.as_str().as_bytes());
    Ok(axum::Json(state.store.create_cluster(&id, &name, &server, &sealed).await?))
}

/// List registered clusters, newest first (admin).
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters", params(PageParams),
    responses((status = 200, description = "Clusters; `x-next-cursor` is set when more follow", body = Vec<Cluster>), ApiErrors))]
async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    auth::require_admin(&caller)?;
    let page = paging.page()?;
    Ok(paged(state.store.list_clusters(&page).await?, &page))
}

/// Get a registered cluster (admin). The kubeconfig is never returned.
#[utoipa::path(get, path = "/v1/clusters/{id}", tag = "clusters", params(("id" = ClusterId, Path, description = "Cluster id")),
    responses((status = 200, description = "The cluster", body = Cluster), ApiErrors))]
async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ClusterId>,
) -> Result<axum::Json<Cluster>> {
    auth::require_admin(&caller)?;
    Ok(axum::Json(state.store.get_cluster(&id).await?))
}

/// Unregister a cluster no tenant uses (admin); 409 while tenants do.
#[utoipa::path(delete, path = "/v1/clusters/{id}", tag = "clusters", params(("id" = ClusterId, Path, description = "Cluster id")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
async fn delete_cluster(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ClusterId>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    state.store.delete_cluster(&id).await?;
    state.clusters.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// A cluster's API server version, whether it answers (and why not), and whether kubeop's
/// CustomResourceDefinitions are installed (admin).
#[utoipa::path(get, path = "/v1/clusters/{id}/status", tag = "clusters", params(("id" = ClusterId, Path, description = "Cluster id")),
    responses((status = 200, description = "What the cluster answered", body = ClusterStatusAnswer), ApiErrors, ClusterErrors))]
async fn get_cluster_status(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ClusterId>,
) -> Result<axum::Json<ClusterStatusAnswer>> {
    auth::require_admin(&caller)?;
    let cluster = state.store.get_cluster(&id).await?;
    let status = state.clusters.status(Some(&id)).await?;
    Ok(axum::Json(ClusterStatusAnswer { id: cluster.id, name: cluster.name, status }))
}
