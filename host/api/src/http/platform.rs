//! `/v1/platform/…`: the platform policy and the plugins (admin only).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiErrors, BodyErrors, ErrorBody, Result, invalid_field};
use super::extract::{Json, read_body};
use crate::auth::{self, Caller};
use kubeop_core::{AdmissionPolicy, PlatformPolicy, Quantity, QuotaMax};
use kubeop_plugins::{InstallError, PluginStatus, SlotKind};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(list_plugins))
        .routes(routes!(upload_plugin, reset_plugin))
}

/// The platform policy as the seed's API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyBody {
    /// Registries images may come from (`host` or `host:port`); empty allows any.
    #[serde(default)]
    #[schema(example = json!(["docker.io", "ghcr.io"]))]
    image_allowlist: Vec<String>,
    /// CIDRs every project may always reach.
    #[serde(default)]
    #[schema(example = json!(["10.0.0.0/8", "172.16.0.0/12"]))]
    egress_baseline: Vec<String>,
    #[serde(default, deserialize_with = "super::extract::object")]
    quota_max: QuotaMaxBody,
    /// Hosts apps, Ingresses and HTTPRoutes may serve: exact names or `*.suffix` for one more
    /// label. Empty allows any.
    #[serde(default)]
    #[schema(example = json!(["*.apps.example.com"]))]
    allowed_hosts: Vec<String>,
    /// Service types the admission review allows besides ClusterIP.
    #[serde(default)]
    #[schema(example = json!(["LoadBalancer"]))]
    allowed_service_types: Vec<String>,
    /// Admission rules whose denials are only warnings (README, "Admission").
    #[serde(default)]
    #[schema(example = json!(["host-collision"]))]
    audit_rules: Vec<String>,
    /// `database` once a policy was PUT, else `environment` (configuration). Ignored in a PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    source: Option<String>,
    /// When the stored policy was set. Ignored in a PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    updated_at: Option<DateTime<Utc>>,
    /// Who set the stored policy. Ignored in a PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    updated_by: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QuotaMaxBody {
    /// Ceiling of a project's CPU requests, a Kubernetes quantity.
    #[serde(rename = "requestsCPU", alias = "requestsCpu", default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "4")]
    requests_cpu: Option<String>,
    /// Ceiling of a project's memory requests, a Kubernetes quantity.
    #[serde(rename = "requestsMemory", default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "8Gi")]
    requests_memory: Option<String>,
}

impl PolicyBody {
    fn from_policy(policy: &PlatformPolicy) -> Self {
        Self {
            image_allowlist: policy.image_allowlist.iter().map(|r| r.as_str().to_owned()).collect(),
            egress_baseline: policy.egress_baseline.iter().map(|c| c.as_str().to_owned()).collect(),
            quota_max: QuotaMaxBody {
                requests_cpu: policy.quota_max.requests_cpu.as_ref().map(|q| q.as_str().to_owned()),
                requests_memory: policy.quota_max.requests_memory.as_ref().map(|q| q.as_str().to_owned()),
            },
            allowed_hosts: policy.admission.allowed_host_texts(),
            allowed_service_types: policy.admission.allowed_service_type_texts(),
            audit_rules: policy.admission.audit_rule_texts(),
            source: None,
            updated_at: None,
            updated_by: None,
        }
    }

    /// Every entry validated; an error names the field and the entry.
    fn parse(&self) -> Result<PlatformPolicy> {
        let quantity = |name: &'static str, raw: &Option<String>| {
            raw.as_deref().map(Quantity::parse).transpose().map_err(invalid_field(name))
        };
        Ok(PlatformPolicy {
            image_allowlist: PlatformPolicy::parse_registries(&self.image_allowlist)
                .map_err(invalid_field("imageAllowlist"))?,
            egress_baseline: PlatformPolicy::parse_cidrs(&self.egress_baseline)
                .map_err(invalid_field("egressBaseline"))?,
            quota_max: QuotaMax {
                requests_cpu: quantity("quotaMax.requestsCPU", &self.quota_max.requests_cpu)?,
                requests_memory: quantity("quotaMax.requestsMemory", &self.quota_max.requests_memory)?,
            },
            admission: AdmissionPolicy::parse(
                &self.allowed_hosts,
                &self.allowed_service_types,
                &self.audit_rules,
            )
            .map_err(|(field, invalid)| invalid_field(field)(invalid))?,
        })
    }
}

/// The platform policy in force and where it comes from (admin).
#[utoipa::path(get, path = "/v1/platform/policy", tag = "platform",
    responses((status = 200, description = "The policy in force and where it comes from", body = PolicyBody), ApiErrors))]
async fn get_policy(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<PolicyBody>> {
    auth::require_admin(&caller)?;
    let effective = state.policy.effective();
    let mut body = PolicyBody::from_policy(&effective.policy);
    match &effective.stored {
        Some((updated_at, updated_by)) => {
            body.source = Some("database".into());
            body.updated_at = Some(*updated_at);
            body.updated_by = Some(updated_by.clone());
        }
        None => body.source = Some("environment".into()),
    }
    Ok(axum::Json(body))
}

/// Replace the platform policy (admin). It applies to this replica's next request, and to the
/// others' within milliseconds on PostgreSQL (at most `plugins.sync_interval_ms` in any case).
#[utoipa::path(put, path = "/v1/platform/policy", tag = "platform", request_body = PolicyBody,
    responses((status = 204, description = "Stored"), ApiErrors, BodyErrors))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PolicyBody>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    let policy = body.parse()?;
    state.store.put_platform_policy(&policy, caller.subject()).await?;
    // In force on this replica before we answer; the others follow the notification.
    state.policy.reload(&state.store).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What each plugin slot runs on this replica, with call statistics (admin).
#[utoipa::path(get, path = "/v1/platform/plugins", tag = "platform",
    responses((status = 200, description = "Each slot with the plugin in force", body = Vec<PluginStatus>), ApiErrors))]
async fn list_plugins(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<PluginStatus>>> {
    auth::require_admin(&caller)?;
    Ok(axum::Json(state.plugins.status()))
}

pub(super) fn slot(raw: &str) -> Result<SlotKind> {
    SlotKind::parse(raw).ok_or_else(|| {
        ApiError::NotFound(format!("no plugin slot `{raw}` (slots: image-policy, pricing, admission)"))
    })
}

/// An uploaded component's bytes (documentation of the upload body).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(super) struct Component(Vec<u8>);

/// A component's bytes from an upload body, at most the slot's `max_upload_bytes`.
pub(super) async fn read_component(
    state: &AppState,
    kind: SlotKind,
    body: Body,
) -> Result<axum::body::Bytes> {
    let limit = state.plugins.max_upload_bytes(kind);
    let bytes = read_body(body, limit, || {
        format!("the component is over {limit} bytes (the {kind} slot's max_upload_bytes)")
    })
    .await?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the body must be the component's bytes".into()));
    }
    Ok(bytes)
}

/// Upload a component for a slot (admin). It is compiled, checked against the slot's world and
/// self-checked before it replaces the active one, on this replica at once and on the others
/// within `plugins.sync_interval_ms`. A refused component changes nothing.
#[utoipa::path(put, path = "/v1/platform/plugins/{slot}", tag = "platform",
    params(("slot" = String, Path, description = "image-policy, pricing or admission")),
    request_body(
        content = Component, content_type = "application/octet-stream",
        description = "The component's bytes (wasm32-wasip2); any Content-Type is taken, `application/wasm` too"
    ),
    responses(
        (status = 200, description = "Now active", body = PluginStatus),
        ApiErrors,
        (status = 413, description = "Over the slot's `max_upload_bytes` (64 MiB by default)", body = ErrorBody),
    ))]
async fn upload_plugin(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Body,
) -> Result<axum::Json<PluginStatus>> {
    // The caller and the slot are checked before a byte of the (large) body is read.
    auth::require_admin(&caller)?;
    let kind = slot(&raw)?;
    let bytes = read_component(&state, kind, body).await?;
    match state.plugins.install(kind, bytes.to_vec(), caller.subject()).await {
        Ok(status) => Ok(axum::Json(status)),
        Err(InstallError::Refused(why)) => Err(ApiError::BadRequest(format!("plugin refused: {why}"))),
        Err(InstallError::Store(error)) => Err(upload_store_error(error)),
    }
}

/// Drop a slot's uploaded component (admin): it goes back to `plugins.dir`'s file or the
/// built-in default.
#[utoipa::path(delete, path = "/v1/platform/plugins/{slot}", tag = "platform",
    params(("slot" = String, Path, description = "image-policy, pricing or admission")),
    responses((status = 200, description = "What the slot runs now", body = PluginStatus), ApiErrors))]
async fn reset_plugin(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<PluginStatus>> {
    auth::require_admin(&caller)?;
    Ok(axum::Json(state.plugins.remove(slot(&raw)?).await.map_err(upload_store_error)?))
}

/// The plugin host's uploads live in our store: its failures are store failures.
fn upload_store_error(error: kubeop_plugins::UploadStoreError) -> ApiError {
    match error.downcast::<kubeop_store::StoreError>() {
        Ok(store) => (*store).into(),
        Err(other) => ApiError::Internal(anyhow::anyhow!(other)),
    }
}
