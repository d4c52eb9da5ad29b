//! `/v1/tenants`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiErrors, BodyErrors, Result, invalid_field};
use super::extract::{Json, PageParams, PathId, Query};
use super::{AppState, Identified, paged};
use crate::auth::{self, Caller};
use kubeop_core::{ClusterId, Name, Tenant, TenantId};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants, update_tenant))
        .routes(routes!(get_tenant, delete_tenant))
}

impl Identified for Tenant {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    #[serde(alias = "Name")]
    #[schema(value_type = Name, example = "acme")]
    name: String,
    /// A registered cluster for the tenant's projects; absent: the default cluster.
    #[serde(rename = "clusterID", alias = "clusterId", alias = "cluster_id", default)]
    #[schema(value_type = Option<ClusterId>)]
    cluster_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateTenant {
    #[serde(rename = "ID", alias = "id")]
    #[schema(value_type = TenantId)]
    id: String,
    #[serde(rename = "Name", alias = "name")]
    #[schema(value_type = Name, example = "acme-inc")]
    name: String,
}

/// Create a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 200, description = "The new tenant", body = Tenant), ApiErrors, BodyErrors))]
async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTenant>,
) -> Result<axum::Json<Tenant>> {
    auth::require_admin(&caller)?;
    let name = Name::parse(&body.name)?;
    let cluster =
        body.cluster_id.as_deref().map(ClusterId::parse).transpose().map_err(invalid_field("clusterID"))?;
    Ok(axum::Json(state.store.create_tenant(&name, cluster.as_ref()).await?))
}

/// List tenants, newest first (admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, description = "Tenants; `x-next-cursor` is set when more follow", body = Vec<Tenant>), ApiErrors))]
async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    auth::require_admin(&caller)?;
    let page = paging.page()?;
    Ok(paged(state.store.list_tenants(&page).await?, &page))
}

/// Get a tenant (admin, or a tenant-role token for this tenant).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = Tenant), ApiErrors))]
async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TenantId>,
) -> Result<axum::Json<Tenant>> {
    auth::may_read_tenant(&caller, &id)?;
    Ok(axum::Json(state.store.get_tenant(&id).await?))
}

/// Rename a tenant (admin). Its projects' namespaces keep their names.
#[utoipa::path(put, path = "/v1/tenants", tag = "tenants", request_body = UpdateTenant,
    responses((status = 204, description = "Renamed"), ApiErrors, BodyErrors))]
async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateTenant>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    let id = TenantId::parse(&body.id).map_err(invalid_field("ID"))?;
    let name = Name::parse(&body.name)?;
    state.store.rename_tenant(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a tenant with all its projects and apps (admin).
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path, description = "Tenant id")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TenantId>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    state.store.delete_tenant(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
