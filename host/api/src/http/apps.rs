//! `/v1/apps`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiErrors, BodyErrors, Result, invalid_field};
use super::extract::{Json, PageParams, PathId, Query};
use super::{AppState, Identified, paged, project_filter};
use crate::auth::{self, Caller};
use kubeop_core::{App, AppId, Hostname, ImageRef, Name, ProjectId};
use kubeop_kube::SyncStatus;
use kubeop_plugins::{ImageCheck, ImageVerdict};
use kubeop_store::apps::AppChanges;
use kubeop_store::outbox::ObjectKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps, update_app))
        .routes(routes!(get_app, delete_app))
}

impl Identified for App {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    #[serde(rename = "projectID", alias = "projectId", alias = "project_id", alias = "ProjectID")]
    #[schema(value_type = ProjectId)]
    project_id: String,
    #[serde(alias = "Name")]
    #[schema(value_type = Name, example = "web")]
    name: String,
    /// An image reference; `nginx` means `docker.io/library/nginx:latest`.
    #[serde(alias = "Image")]
    #[schema(example = "docker.io/library/nginx:1.25")]
    image: String,
    /// Public host name (optional).
    #[serde(alias = "Host")]
    #[schema(value_type = Option<Hostname>, example = "web.local")]
    host: Option<String>,
}

/// Fields left out keep their current value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    #[serde(rename = "ID", alias = "id")]
    #[schema(value_type = AppId)]
    id: String,
    #[serde(rename = "Name", alias = "name")]
    #[schema(value_type = Option<Name>)]
    name: Option<String>,
    #[serde(rename = "Image", alias = "image")]
    #[schema(example = "docker.io/library/nginx:1.26")]
    image: Option<String>,
    #[serde(rename = "Host", alias = "host")]
    #[schema(value_type = Option<Hostname>)]
    host: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// Only this project's apps (required for tenant- and project-role tokens).
    #[serde(rename = "projectID", alias = "projectId", alias = "project_id")]
    #[param(rename = "projectID", value_type = Option<ProjectId>)]
    project_id: Option<String>,
}

/// Asks the image-policy plugin about an image under the policy in force: a denial is the
/// caller's 400, a failing plugin a 503; either way nothing is written.
pub(super) async fn check_image(
    state: &AppState,
    image: &ImageRef,
    tenant: &kubeop_core::TenantId,
    project: &ProjectId,
) -> Result<()> {
    if state.skip_image_policy {
        return Ok(());
    }
    let check = ImageCheck::new(image, tenant, project, &state.policy.effective().policy);
    match state.plugins.check_image(&check).await {
        Ok(ImageVerdict::Allow) => Ok(()),
        Ok(ImageVerdict::Deny(reason)) => {
            Err(ApiError::BadRequest(format!("image `{}` is not allowed: {reason}", image.as_written())))
        }
        Err(failure) => Err(ApiError::Unavailable(format!("image policy unavailable: {failure}"))),
    }
}

/// A host outside the policy's `allowedHosts` is refused here, before the admission webhook
/// would refuse the app's Ingress on the cluster.
fn check_host(state: &AppState, host: &Hostname) -> Result<()> {
    let policy = state.policy.effective();
    let admission = &policy.policy.admission;
    if admission.allows_host(host) {
        return Ok(());
    }
    let allowed: Vec<&str> = admission.allowed_hosts.iter().map(|p| p.as_str()).collect();
    Err(ApiError::BadRequest(format!(
        "host: `{}` is not allowed by the platform policy (allowedHosts: {})",
        host.as_str(),
        allowed.join(", ")
    )))
}

/// Create an app in a project (admin, the owning tenant, or a project-role token for it).
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 200, description = "The new app", body = App), ApiErrors, BodyErrors))]
async fn create_app(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateApp>,
) -> Result<axum::Json<App>> {
    let project_id = ProjectId::parse(&body.project_id).map_err(invalid_field("projectID"))?;
    let name = Name::parse(&body.name)?;
    let image = ImageRef::parse(&body.image)?;
    let host = body.host.as_deref().map(Hostname::parse).transpose()?;
    let project = state.store.get_project(&project_id).await?;
    auth::may_create_app(&caller, &project)?;
    if let Some(host) = &host {
        check_host(&state, host)?;
    }
    check_image(&state, &image, &project.tenant_id, &project.id).await?;
    Ok(axum::Json(state.store.create_app(&project.id, &name, &image, host.as_ref()).await?))
}

/// List apps, newest first (admin; other tokens must filter by a project of theirs).
#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(ListParams, PageParams),
    responses((status = 200, description = "Apps; `x-next-cursor` is set when more follow", body = Vec<App>), ApiErrors))]
async fn list_apps(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let project = project_filter(&state, params.project_id.as_deref()).await?;
    let page = paging.page()?;
    auth::may_list_apps(&caller, project.as_ref())?;
    Ok(paged(state.store.list_apps(project.as_ref().map(|p| &p.id), &page).await?, &page))
}

/// An app with where it stands on its cluster.
#[derive(Serialize, utoipa::ToSchema)]
struct AppAnswer {
    #[serde(flatten)]
    app: App,
    /// Absent when the tenant has no cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<SyncStatus>,
}

/// Get an app (admin, the owning tenant, or a project-role token for its project), with its
/// status on the cluster: `pending`, `ready` or `error` and a message, and its namespace.
#[utoipa::path(get, path = "/v1/apps/{id}", tag = "apps", params(("id" = AppId, Path, description = "App id")),
    responses((status = 200, description = "The app", body = AppAnswer), ApiErrors))]
async fn get_app(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AppId>,
) -> Result<axum::Json<AppAnswer>> {
    let app = state.store.get_app(&id).await?;
    auth::may_read_app(&caller, &app)?;
    let tenant = state.store.get_tenant(&app.tenant_id).await?;
    let status = if tenant.cluster_id.is_some() || state.clusters.has_default() {
        let project = state.store.get_project(&app.project_id).await?;
        state.statuses.of(ObjectKind::App, id.as_str(), &tenant, project.namespace.as_str()).await?
    } else {
        None
    };
    Ok(axum::Json(AppAnswer { app, status }))
}

/// Update an app's name, image or host (admin).
#[utoipa::path(put, path = "/v1/apps", tag = "apps", request_body = UpdateApp,
    responses((status = 204, description = "Updated"), ApiErrors, BodyErrors))]
async fn update_app(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateApp>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    let id = AppId::parse(&body.id).map_err(invalid_field("ID"))?;
    let changes = AppChanges {
        name: body.name.as_deref().map(Name::parse).transpose()?,
        image: body.image.as_deref().map(ImageRef::parse).transpose()?,
        host: body.host.as_deref().map(Hostname::parse).transpose()?,
    };
    if changes.name.is_none() && changes.image.is_none() && changes.host.is_none() {
        return Err(ApiError::BadRequest("nothing to update: give Name, Image or Host".into()));
    }
    if let Some(host) = &changes.host {
        check_host(&state, host)?;
    }
    if let Some(image) = &changes.image {
        let app = state.store.get_app(&id).await?;
        check_image(&state, image, &app.tenant_id, &app.project_id).await?;
    }
    state.store.update_app(&id, &changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an app (admin).
#[utoipa::path(delete, path = "/v1/apps/{id}", tag = "apps", params(("id" = AppId, Path, description = "App id")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
async fn delete_app(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AppId>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    state.store.delete_app(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
