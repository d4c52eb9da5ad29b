//! `/v1/kubeconfigs`: kubeconfigs with a real, short-lived token for one namespace.

use std::time::Duration;

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiError, ApiErrors, ClusterErrors, Result, invalid_field};
use super::extract::{PathId, Query};
use crate::auth::{self, Caller};
use kubeop_core::{Name, ProjectId};
use kubeop_kube::kubeconfigs;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_project_kubeconfig)).routes(routes!(get_namespace_kubeconfig))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TtlParams {
    /// Lifetime of the token in minutes (default `kube.kubeconfig_ttl_minutes`, 60; at most
    /// `kube.max_kubeconfig_ttl_minutes`, 1440; Kubernetes issues no token under 10 minutes).
    #[serde(rename = "ttlMinutes")]
    #[param(minimum = 10, maximum = 1440)]
    ttl_minutes: Option<u32>,
}

/// A kubeconfig: YAML for `kubectl --kubeconfig`, and when its token expires.
#[derive(Serialize, utoipa::ToSchema)]
struct KubeconfigAnswer {
    kubeconfig: String,
    expires_at: DateTime<Utc>,
}

impl TtlParams {
    fn ttl(&self, state: &AppState) -> Result<Duration> {
        let settings = &state.kube_settings;
        let minutes = self.ttl_minutes.unwrap_or(settings.kubeconfig_ttl_minutes);
        if !(10..=settings.max_kubeconfig_ttl_minutes).contains(&minutes) {
            return Err(ApiError::BadRequest(format!(
                "ttlMinutes: must be from 10 to {} (Kubernetes issues no token under 10 minutes)",
                settings.max_kubeconfig_ttl_minutes
            )));
        }
        Ok(Duration::from_secs(u64::from(minutes) * 60))
    }
}

/// A kubeconfig for a project's namespace (admin, the owning tenant, or the project's token).
/// Creates the namespace, the ServiceAccount `kubeop-project` and its RoleBinding to `edit`
/// when missing, then asks the cluster for a token.
#[utoipa::path(get, path = "/v1/kubeconfigs/project/{id}", tag = "kubeconfigs",
    params(("id" = ProjectId, Path, description = "Project id"), TtlParams),
    responses((status = 200, description = "The kubeconfig", body = KubeconfigAnswer), ApiErrors, ClusterErrors))]
async fn get_project_kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProjectId>,
    Query(params): Query<TtlParams>,
) -> Result<axum::Json<KubeconfigAnswer>> {
    let project = state.store.get_project(&id).await?;
    auth::may_read_project(&caller, &project)?;
    let ttl = params.ttl(&state)?;
    let tenant = state.store.get_tenant(&project.tenant_id).await?;
    let connected = state.clusters.for_tenant(&tenant).await?;
    let issued =
        kubeconfigs::for_project(&connected, &project, ttl, &state.kube_settings.field_manager).await?;
    Ok(axum::Json(KubeconfigAnswer { kubeconfig: issued.kubeconfig, expires_at: issued.expires_at }))
}

/// A kubeconfig for any existing namespace (admin): a project's namespace on its tenant's
/// cluster, any other on the default cluster. 404 when the namespace does not exist.
#[utoipa::path(get, path = "/v1/kubeconfigs/{namespace}", tag = "kubeconfigs",
    params(("namespace" = String, Path, description = "Namespace, e.g. kubeop-acme-web"), TtlParams),
    responses((status = 200, description = "The kubeconfig", body = KubeconfigAnswer), ApiErrors, ClusterErrors))]
async fn get_namespace_kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    Path(namespace): Path<String>,
    Query(params): Query<TtlParams>,
) -> Result<axum::Json<KubeconfigAnswer>> {
    auth::require_admin(&caller)?;
    Name::parse(&namespace).map_err(invalid_field("namespace"))?;
    let ttl = params.ttl(&state)?;
    let cluster = match state.store.project_by_namespace(&namespace).await? {
        Some(project) => state.store.get_tenant(&project.tenant_id).await?.cluster_id,
        None => None,
    };
    if cluster.is_none() && !state.clusters.has_default() {
        return Err(ApiError::Unavailable(format!(
            "no cluster configured for namespace {namespace} (no default cluster)"
        )));
    }
    let connected = state.clusters.connect(cluster.as_ref()).await?;
    let issued =
        kubeconfigs::for_namespace(&connected, &namespace, ttl, &state.kube_settings.field_manager).await?;
    Ok(axum::Json(KubeconfigAnswer { kubeconfig: issued.kubeconfig, expires_at: issued.expires_at }))
}
