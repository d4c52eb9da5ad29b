//! `/v1/cronjobs`: scheduled workloads in a project, as the original kubeOP had them. Stored in
//! the database and written to the project's namespace as batch/v1 CronJobs by the reconciler.
//! Admin, the owning tenant, or a project-role token for the project.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::apps::check_image;
use super::error::{ApiError, ApiErrors, BodyErrors, ClusterErrors, Result, invalid_field};
use super::extract::{Json, PageParams, Query};
use super::{AppState, Identified, paged, project_filter};
use crate::auth::{self, Caller};
use kubeop_core::{
    ConcurrencyPolicy, CronJob, CronSchedule, ImageRef, MAX_ARGUMENT_BYTES, MAX_ARGUMENTS,
    MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, Project, ProjectId, check_env_name, parse_cronjob_name,
};
use kubeop_kube::{SyncState, SyncStatus};
use kubeop_store::cronjobs::NewCronJob;
use kubeop_store::outbox::ObjectKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cronjob, list_cronjobs))
        .routes(routes!(get_cronjob, delete_cronjob))
        .routes(routes!(run_cronjob))
}

impl Identified for CronJob {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

/// Kubernetes' own defaults where a field is left out.
const DEFAULT_SUCCESSFUL_HISTORY: i32 = 3;
const DEFAULT_FAILED_HISTORY: i32 = 1;
/// Finished Jobs kept per CronJob, at most: each is an object in the cluster's store.
const MAX_HISTORY: i64 = 100;
/// One year: a later start is no deadline.
const MAX_STARTING_DEADLINE_SECONDS: i64 = 366 * 24 * 3600;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateCronJob {
    #[serde(rename = "projectID", alias = "projectId", alias = "project_id", alias = "ProjectID")]
    #[schema(value_type = ProjectId)]
    project_id: String,
    /// A DNS-1123 label of at most 52 characters (Kubernetes' limit for CronJobs).
    #[serde(alias = "Name")]
    #[schema(example = "nightly-report", max_length = 52)]
    name: String,
    /// Cron syntax as Kubernetes reads it: five fields (minute hour day-of-month month
    /// day-of-week) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `@every 1h30m`.
    #[serde(alias = "Schedule")]
    #[schema(example = "0 3 * * *")]
    schedule: String,
    /// An image reference, checked by the image-policy plugin like an app's.
    #[serde(alias = "Image")]
    #[schema(example = "docker.io/library/busybox:1.36")]
    image: String,
    /// The container's entrypoint; absent: the image's.
    #[serde(alias = "Command", default)]
    #[schema(max_items = 64)]
    command: Vec<String>,
    #[serde(alias = "Args", default)]
    #[schema(max_items = 64)]
    args: Vec<String>,
    /// Environment variables, name to value.
    #[serde(alias = "Env", default)]
    #[schema(example = json!({"MODE": "nightly"}))]
    env: BTreeMap<String, String>,
    /// `true`: no run is started until it is `false` again.
    #[serde(alias = "Suspend", default)]
    suspend: bool,
    /// `Allow` (default), `Forbid` or `Replace`: what to do when a run is due while the last
    /// one still runs.
    #[serde(rename = "concurrencyPolicy", alias = "ConcurrencyPolicy", default)]
    #[schema(example = "Forbid")]
    concurrency_policy: Option<String>,
    /// Finished Jobs kept (0–100, default 3).
    #[serde(rename = "successfulJobsHistoryLimit", alias = "SuccessfulJobsHistoryLimit", default)]
    #[schema(minimum = 0, maximum = 100)]
    successful_jobs_history_limit: Option<i64>,
    /// Failed Jobs kept (0–100, default 1).
    #[serde(rename = "failedJobsHistoryLimit", alias = "FailedJobsHistoryLimit", default)]
    #[schema(minimum = 0, maximum = 100)]
    failed_jobs_history_limit: Option<i64>,
    /// A run that could not start within this many seconds of its time is skipped.
    #[serde(rename = "startingDeadlineSeconds", alias = "StartingDeadlineSeconds", default)]
    #[schema(minimum = 0, maximum = 31622400)]
    starting_deadline_seconds: Option<i64>,
}

impl CreateCronJob {
    /// Every field checked; an error names the field.
    fn parse(self, project: ProjectId) -> Result<(NewCronJob, ImageRef)> {
        let name = parse_cronjob_name(&self.name).map_err(invalid_field("name"))?;
        let schedule = CronSchedule::parse(&self.schedule).map_err(invalid_field("schedule"))?;
        let image = ImageRef::parse(&self.image).map_err(invalid_field("image"))?;
        check_arguments("command", &self.command)?;
        check_arguments("args", &self.args)?;
        if self.env.len() > MAX_ENV_VARS {
            return Err(ApiError::BadRequest(format!("env: more than {MAX_ENV_VARS} variables")));
        }
        for (key, value) in &self.env {
            check_env_name(key).map_err(invalid_field("env"))?;
            if value.len() > MAX_ENV_VALUE_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "env: `{key}` is over {MAX_ENV_VALUE_BYTES} bytes"
                )));
            }
        }
        let concurrency_policy = match self.concurrency_policy.as_deref() {
            Some(raw) => ConcurrencyPolicy::parse(raw).map_err(invalid_field("concurrencyPolicy"))?,
            None => ConcurrencyPolicy::default(),
        };
        let bounded = |field: &str, value: Option<i64>, max: i64| -> Result<Option<i64>> {
            match value {
                Some(value) if !(0..=max).contains(&value) => {
                    Err(ApiError::BadRequest(format!("{field}: {value} is not between 0 and {max}")))
                }
                other => Ok(other),
            }
        };
        let history = |field: &str, value: Option<i64>, default: i32| -> Result<i32> {
            Ok(bounded(field, value, MAX_HISTORY)?.map_or(default, |v| v as i32))
        };
        let new = NewCronJob {
            project_id: project,
            name,
            schedule,
            image: self.image,
            command: self.command,
            args: self.args,
            env: self.env,
            suspend: self.suspend,
            concurrency_policy,
            successful_jobs_history_limit: history(
                "successfulJobsHistoryLimit",
                self.successful_jobs_history_limit,
                DEFAULT_SUCCESSFUL_HISTORY,
            )?,
            failed_jobs_history_limit: history(
                "failedJobsHistoryLimit",
                self.failed_jobs_history_limit,
                DEFAULT_FAILED_HISTORY,
            )?,
            starting_deadline_seconds: bounded(
                "startingDeadlineSeconds",
                self.starting_deadline_seconds,
                MAX_STARTING_DEADLINE_SECONDS,
            )?,
        };
        Ok((new, image))
    }
}

fn check_arguments(field: &str, values: &[String]) -> Result<()> {
    if values.len() > MAX_ARGUMENTS {
        return Err(ApiError::BadRequest(format!("{field}: more than {MAX_ARGUMENTS} entries")));
    }
    if let Some(index) = values.iter().position(|v| v.len() > MAX_ARGUMENT_BYTES) {
        return Err(ApiError::BadRequest(format!("{field}[{index}]: over {MAX_ARGUMENT_BYTES} bytes")));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListParams {
    /// Only this project's CronJobs (required for tenant- and project-role tokens).
    #[serde(rename = "projectID", alias = "projectId", alias = "project_id")]
    #[param(rename = "projectID", value_type = Option<ProjectId>)]
    project_id: Option<String>,
}

/// A CronJob with where it stands on its cluster.
#[derive(Serialize, utoipa::ToSchema)]
struct CronJobAnswer {
    #[serde(flatten)]
    cronjob: CronJob,
    /// `pending` until the cluster has it (`error` while applying it fails), then `ready`.
    /// Absent when the tenant has no cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<SyncStatus>,
}

/// The Job a run started.
#[derive(Serialize, utoipa::ToSchema)]
struct RunAnswer {
    #[schema(example = "nightly-report-01jd5x7k3q")]
    job: String,
    #[schema(example = "kubeop-acme-web")]
    namespace: String,
}

/// A project by the id in a path or query, 404 when it does not parse or exist.
async fn project(state: &AppState, raw: &str) -> Result<Project> {
    let id = ProjectId::parse(raw).map_err(|_| ApiError::NotFound(format!("project {raw} not found")))?;
    Ok(state.store.get_project(&id).await?)
}

/// Create a CronJob in a project (admin, the owning tenant, or a project-role token for it).
/// Its pods run under the same baseline as apps' (non-root, read-only root filesystem, no
/// capabilities, default requests and limits).
#[utoipa::path(post, path = "/v1/cronjobs", tag = "cronjobs", request_body = CreateCronJob,
    responses((status = 200, description = "The new CronJob", body = CronJob), ApiErrors, BodyErrors))]
async fn create_cronjob(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateCronJob>,
) -> Result<axum::Json<CronJob>> {
    let project_id = ProjectId::parse(&body.project_id).map_err(invalid_field("projectID"))?;
    let (new, image) = body.parse(project_id)?;
    let project = state.store.get_project(&new.project_id).await?;
    auth::may_manage_cronjobs(&caller, &project)?;
    check_image(&state, &image, &project.tenant_id, &project.id).await?;
    Ok(axum::Json(state.store.create_cronjob(&new).await?))
}

/// List CronJobs, newest first (admin; other tokens must filter by a project of theirs).
#[utoipa::path(get, path = "/v1/cronjobs", tag = "cronjobs", params(ListParams, PageParams),
    responses((status = 200, description = "CronJobs; `x-next-cursor` is set when more follow", body = Vec<CronJob>), ApiErrors))]
async fn list_cronjobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let project = project_filter(&state, params.project_id.as_deref()).await?;
    let page = paging.page()?;
    auth::may_list_cronjobs(&caller, project.as_ref())?;
    Ok(paged(state.store.list_cronjobs(project.as_ref().map(|p| &p.id), &page).await?, &page))
}

/// Get a CronJob, with whether its cluster has it yet.
#[utoipa::path(get, path = "/v1/cronjobs/{projectID}/{name}", tag = "cronjobs",
    params(("projectID" = ProjectId, Path, description = "Project id"), ("name" = String, Path, description = "CronJob name")),
    responses((status = 200, description = "The CronJob", body = CronJobAnswer), ApiErrors))]
async fn get_cronjob(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, name)): Path<(String, String)>,
) -> Result<axum::Json<CronJobAnswer>> {
    let project = project(&state, &project_id).await?;
    auth::may_manage_cronjobs(&caller, &project)?;
    let cronjob = state.store.get_cronjob(&project.id, &name).await?;
    let tenant = state.store.get_tenant(&project.tenant_id).await?;
    let status = if tenant.cluster_id.is_some() || state.clusters.has_default() {
        let mark = state.store.pending_mark(ObjectKind::CronJob, cronjob.id.as_str()).await?;
        Some(SyncStatus {
            state: match &mark {
                None => SyncState::Ready,
                Some(mark) if mark.last_error.is_some() => SyncState::Error,
                Some(_) => SyncState::Pending,
            },
            message: mark.and_then(|m| m.last_error),
            namespace: project.namespace.as_str().to_owned(),
        })
    } else {
        None
    };
    Ok(axum::Json(CronJobAnswer { cronjob, status }))
}

/// Delete a CronJob; the cluster's copy and its Jobs follow.
#[utoipa::path(delete, path = "/v1/cronjobs/{projectID}/{name}", tag = "cronjobs",
    params(("projectID" = ProjectId, Path, description = "Project id"), ("name" = String, Path, description = "CronJob name")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
async fn delete_cronjob(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    let project = project(&state, &project_id).await?;
    auth::may_manage_cronjobs(&caller, &project)?;
    state.store.delete_cronjob(&project.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run a CronJob now: a Job from its template, owned by it, as `kubectl create job
/// --from=cronjob/<name>` creates it. Needs the project's cluster (503 without one).
#[utoipa::path(post, path = "/v1/cronjobs/{projectID}/{name}/run", tag = "cronjobs",
    params(("projectID" = ProjectId, Path, description = "Project id"), ("name" = String, Path, description = "CronJob name")),
    responses((status = 200, description = "The Job started", body = RunAnswer), ApiErrors, ClusterErrors))]
async fn run_cronjob(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, name)): Path<(String, String)>,
) -> Result<axum::Json<RunAnswer>> {
    let project = project(&state, &project_id).await?;
    auth::may_manage_cronjobs(&caller, &project)?;
    let cronjob = state.store.get_cronjob(&project.id, &name).await?;
    let tenant = state.store.get_tenant(&project.tenant_id).await?;
    let connected = state.clusters.for_tenant(&tenant).await?;
    let namespace = project.namespace.as_str();
    let job = kubeop_kube::cronjobs::run(&connected, &cronjob, namespace, &state.kube_settings.field_manager)
        .await?;
    Ok(axum::Json(RunAnswer { job: job.metadata.name.unwrap_or_default(), namespace: namespace.to_owned() }))
}
