//! `/v1/projects`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiErrors, BodyErrors, Result, invalid_field};
use super::extract::{Json, PageParams, PathId, Query};
use super::{AppState, Identified, paged};
use crate::auth::{self, Caller};
use kubeop_core::{Name, Project, ProjectId, TenantId};
use kubeop_kube::SyncStatus;
use kubeop_store::outbox::ObjectKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects, update_project, patch_project))
        .routes(routes!(get_project, delete_project))
}

impl Identified for Project {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    #[serde(rename = "tenantID", alias = "tenantId", alias = "tenant_id", alias = "TenantID")]
    #[schema(value_type = TenantId)]
    tenant_id: String,
    #[serde(alias = "Name")]
    #[schema(value_type = Name, example = "web")]
    name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProject {
    #[serde(rename = "ID", alias = "id")]
    #[schema(value_type = ProjectId)]
    id: String,
    #[serde(rename = "Name", alias = "name")]
    #[schema(value_type = Name, example = "web-main")]
    name: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// Only this tenant's projects (required for tenant-role tokens).
    #[serde(rename = "tenantID", alias = "tenantId", alias = "tenant_id")]
    #[param(rename = "tenantID", value_type = Option<TenantId>)]
    tenant_id: Option<String>,
}

/// Create a project in a tenant (admin, or a tenant-role token for that tenant).
#[utoipa::path(post, path = "/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 200, description = "The new project", body = Project), ApiErrors, BodyErrors))]
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateProject>,
) -> Result<axum::Json<Project>> {
    let tenant = TenantId::parse(&body.tenant_id).map_err(invalid_field("tenantID"))?;
    let name = Name::parse(&body.name)?;
    auth::may_create_project(&caller, &tenant)?;
    Ok(axum::Json(state.store.create_project(&tenant, &name).await?))
}

/// List projects, newest first (admin; a tenant-role token must filter by its own tenant).
#[utoipa::path(get, path = "/v1/projects", tag = "projects", params(ListParams, PageParams),
    responses((status = 200, description = "Projects; `x-next-cursor` is set when more follow", body = Vec<Project>), ApiErrors))]
async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let tenant = params.tenant_id.as_deref().map(TenantId::parse).transpose();
    let tenant = tenant.map_err(invalid_field("tenantID"))?;
    auth::may_list_projects(&caller, tenant.as_ref())?;
    let page = paging.page()?;
    Ok(paged(state.store.list_projects(tenant.as_ref(), &page).await?, &page))
}

/// A project with where it stands on its cluster.
#[derive(Serialize, utoipa::ToSchema)]
struct ProjectAnswer {
    #[serde(flatten)]
    project: Project,
    /// Absent when the tenant has no cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<SyncStatus>,
}

/// Get a project (admin, the owning tenant, or a project-role token for it), with its status on
/// the cluster: `pending`, `ready` or `error` and a message.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", params(("id" = ProjectId, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectAnswer), ApiErrors))]
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProjectId>,
) -> Result<axum::Json<ProjectAnswer>> {
    let project = state.store.get_project(&id).await?;
    auth::may_read_project(&caller, &project)?;
    let tenant = state.store.get_tenant(&project.tenant_id).await?;
    let status =
        state.statuses.of(ObjectKind::Project, id.as_str(), &tenant, project.namespace.as_str()).await?;
    Ok(axum::Json(ProjectAnswer { project, status }))
}

async fn rename(state: AppState, caller: Caller, body: UpdateProject) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    let id = ProjectId::parse(&body.id).map_err(invalid_field("ID"))?;
    let name = Name::parse(&body.name)?;
    state.store.rename_project(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rename a project (admin). Its namespace keeps the name it was created with.
#[utoipa::path(put, path = "/v1/projects", tag = "projects", request_body = UpdateProject,
    responses((status = 204, description = "Renamed"), ApiErrors, BodyErrors))]
async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateProject>,
) -> Result<StatusCode> {
    rename(state, caller, body).await
}

/// Rename a project (admin); the same as PUT.
#[utoipa::path(patch, path = "/v1/projects", tag = "projects", request_body = UpdateProject,
    responses((status = 204, description = "Renamed"), ApiErrors, BodyErrors))]
async fn patch_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateProject>,
) -> Result<StatusCode> {
    rename(state, caller, body).await
}

/// Delete a project with its apps (admin).
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", params(("id" = ProjectId, Path, description = "Project id")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProjectId>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    state.store.delete_project(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
