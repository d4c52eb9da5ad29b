//! `POST /v1/admission/review`: the admission webhook's evaluation for a pasted AdmissionReview,
//! with the active admission plugin or a candidate (`?plugin=<sha256>`, uploaded with
//! `POST /v1/platform/plugins/admission/candidates`), so a policy is tried before it is rolled
//! out. Admin only.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiErrors, ErrorBody, Result};
use super::extract::{Query, read_body};
use crate::auth::{self, Caller};
use std::time::Duration;

use kubeop_plugins::{AdmissionVerdict, Candidate, CandidateState, HostClaim, InstallError, SlotKind};
use kubeop_webhook::review::{self, Context, Review};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(review_admission)).routes(routes!(upload_candidate))
}

/// How long a review waits for a candidate being compiled on this replica.
const CANDIDATE_PATIENCE: Duration = Duration::from_secs(2);
/// What a review told to come back is told to wait (a JavaScript or Python component compiles
/// in 10–20 s).
const CANDIDATE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Newest candidates each replica compiles ahead of their first review.
const WARMED_CANDIDATES: i64 = (kubeop_plugins::KEPT_CANDIDATES / 2) as i64;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReviewParams {
    /// The sha256 of an uploaded candidate to review with instead of the active plugin.
    plugin: Option<String>,
}

/// The evaluation of one AdmissionReview.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReviewAnswer {
    /// The plugin that decided: its sha256, and whether it is a candidate or the active one.
    plugin: PluginRef,
    /// What the plugin was told besides the review.
    context: ContextBody,
    /// The decision: what `/validate` answers (allowed, message, warnings) and the patch
    /// `/mutate` answers (JSON Patch, as JSON).
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    patch: Option<serde_json::Value>,
    /// Set when the plugin failed (deadline, memory, trap): the webhook's failure mode decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PluginRef {
    sha256: String,
    candidate: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ContextBody {
    /// The tenant and project owning the review's namespace, from the database.
    #[serde(rename = "tenantID", skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(rename = "projectID", skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
    /// Apps' hosts overlapping the hosts an Ingress or HTTPRoute names.
    host_claims: Vec<ClaimBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClaimBody {
    host: String,
    #[serde(rename = "tenantID", skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    namespace: String,
    object: String,
}

/// Review an AdmissionReview v1 as the admission webhook would (admin). The namespace's tenant
/// and project come from the database, host claims from the apps' hosts; the policy is the one
/// in force. With `?plugin=`, an uploaded candidate decides instead of the active plugin.
#[utoipa::path(post, path = "/v1/admission/review", tag = "platform", params(ReviewParams),
    request_body(content = Object, description = "An AdmissionReview v1 (apiVersion admission.k8s.io/v1) with its request"),
    responses(
        (status = 200, description = "The decision", body = ReviewAnswer),
        ApiErrors,
        (status = 503, description = "The candidate is being compiled on this replica: retry after `Retry-After` seconds (or the database is unavailable)", body = ErrorBody),
    ))]
async fn review_admission(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ReviewParams>,
    body: Body,
) -> Result<axum::Json<ReviewAnswer>> {
    auth::require_admin(&caller)?;
    let candidate = match params.plugin.as_deref() {
        Some(sha256) => Some(candidate(&state, sha256).await?),
        None => None,
    };
    let limit = state.limits.body_limit_bytes;
    let bytes = read_body(body, limit, || format!("the AdmissionReview is over {limit} bytes")).await?;
    let review = Review::parse(&bytes).map_err(ApiError::BadRequest)?;
    let context = context(&state, &review).await?;
    let context_body = ContextBody {
        tenant_id: context.tenant.clone(),
        project_id: context.project.clone(),
        host_claims: context
            .claims
            .iter()
            .map(|c| ClaimBody {
                host: c.host.clone(),
                tenant_id: c.tenant.clone(),
                namespace: c.namespace.clone(),
                object: c.object.clone(),
            })
            .collect(),
    };
    let policy = state.policy.effective();
    let check = review.check(context, &policy.policy);
    let plugin = PluginRef {
        sha256: candidate
            .as_ref()
            .map_or_else(|| state.plugins.status_of(SlotKind::Admission).sha256, |c| c.sha256().to_owned()),
        candidate: candidate.is_some(),
    };
    let answer = match state.plugins.admit(&check, candidate.as_ref()).await {
        Ok(AdmissionVerdict { allowed, message, warnings, patch }) => {
            let patch = patch
                .map(|text| {
                    serde_json::from_str(&text).map_err(|e| {
                        ApiError::BadRequest(format!("the plugin returned a patch that is not JSON: {e}"))
                    })
                })
                .transpose()?;
            ReviewAnswer {
                plugin,
                context: context_body,
                allowed,
                message,
                warnings,
                patch,
                plugin_error: None,
            }
        }
        // As the webhook with the default failure mode: denied, saying why.
        Err(error) => ReviewAnswer {
            plugin,
            context: context_body,
            allowed: false,
            message: Some(format!("kubeop admission: the admission plugin failed ({error}); denied")),
            warnings: Vec::new(),
            patch: None,
            plugin_error: Some(error.to_string()),
        },
    };
    Ok(axum::Json(answer))
}

/// The review's context from the database: the project owning the namespace, and the apps whose
/// hosts overlap the hosts an Ingress or HTTPRoute names.
async fn context(state: &AppState, review: &Review) -> Result<Context> {
    let project = match review.namespace() {
        Some(namespace) => state.store.project_by_namespace(namespace).await?,
        None => None,
    };
    let hosts = review.hosts();
    let mut claims = Vec::new();
    if !hosts.is_empty() {
        for served in state.store.served_hosts().await? {
            if hosts.iter().any(|wanted| review::hosts_overlap(wanted, &served.host)) {
                claims.push(HostClaim {
                    host: served.host,
                    tenant: Some(served.tenant_id),
                    namespace: served.namespace,
                    object: format!("App/{}", served.app_id),
                });
            }
        }
    }
    Ok(Context {
        tenant: project.as_ref().map(|p| p.tenant_id.to_string()),
        project: project.as_ref().map(|p| p.id.to_string()),
        claims,
    })
}

/// The candidate `sha256` names, as compiled on this replica. A review never compiles: a
/// candidate this replica has not compiled yet is compiled in the background (every replica
/// also does so when one is uploaded), and the review is answered 503 with `Retry-After` unless
/// it is ready within [`CANDIDATE_PATIENCE`] (as one read from the disk cache is).
async fn candidate(state: &AppState, sha256: &str) -> Result<Candidate> {
    let sha256 = sha256.trim().to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest("plugin: expected the candidate's sha256 (64 hex digits)".into()));
    }
    if let CandidateState::Unknown = state.plugins.candidate_state(&sha256) {
        let (slot, bytes) = state.store.plugin_candidate(&sha256).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no candidate plugin {sha256}; upload it with POST /v1/platform/plugins/admission/candidates"
            ))
        })?;
        if slot != SlotKind::Admission.as_str() {
            return Err(ApiError::BadRequest(format!("plugin: candidate {sha256} is for the {slot} slot")));
        }
        state.plugins.prepare_candidate(SlotKind::Admission, bytes);
    }
    match state.plugins.await_candidate(&sha256, CANDIDATE_PATIENCE).await {
        CandidateState::Ready(candidate) => Ok(candidate),
        CandidateState::Refused(why) => {
            Err(ApiError::BadRequest(format!("plugin: candidate {sha256} no longer loads: {why}")))
        }
        CandidateState::Compiling { since, .. } => Err(ApiError::TryLater {
            message: format!(
                "plugin: candidate {sha256} is being compiled on this replica (for {} s so far); retry shortly",
                since.elapsed().as_secs()
            ),
            after: CANDIDATE_RETRY_AFTER,
        }),
        // Pushed out by other candidates while it compiled: the next try starts it again.
        CandidateState::Unknown => Err(ApiError::TryLater {
            message: format!("plugin: candidate {sha256} is not compiled on this replica yet; retry shortly"),
            after: CANDIDATE_RETRY_AFTER,
        }),
    }
}

/// Compiles the newest admission candidates in the background on this replica, so that their
/// first review finds them ready. Fewer than a replica keeps, so candidates in use by reviews
/// are not pushed out by newer ones.
pub async fn warm_candidates(store: &kubeop_store::Store, plugins: &kubeop_plugins::Plugins) {
    let slot = SlotKind::Admission;
    let newest = match store.plugin_candidate_hashes(slot.as_str(), WARMED_CANDIDATES).await {
        Ok(newest) => newest,
        Err(error) => {
            tracing::warn!(%error, "cannot list candidate plugins");
            return;
        }
    };
    for sha256 in newest {
        if !matches!(plugins.candidate_state(&sha256), CandidateState::Unknown) {
            continue;
        }
        match store.plugin_candidate(&sha256).await {
            Ok(Some((_, bytes))) => {
                plugins.prepare_candidate(slot, bytes);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, %sha256, "cannot read a candidate plugin"),
        }
    }
}

/// A stored candidate.
#[derive(Serialize, utoipa::ToSchema)]
struct CandidateBody {
    #[schema(example = "admission")]
    slot: &'static str,
    sha256: String,
    size: usize,
}

/// Upload a candidate plugin (admin): compiled, checked against the slot's world and
/// self-checked like an upload, then kept (the 16 newest per slot) without going live. Try it
/// with `POST /v1/admission/review?plugin=<sha256>`; roll it out with
/// `PUT /v1/platform/plugins/{slot}`. Only the admission slot takes candidates.
#[utoipa::path(post, path = "/v1/platform/plugins/{slot}/candidates", tag = "platform",
    params(("slot" = String, Path, description = "admission")),
    request_body(content = super::platform::Component, content_type = "application/octet-stream", description = "The component's bytes"),
    responses(
        (status = 201, description = "Kept as a candidate", body = CandidateBody),
        ApiErrors,
        (status = 413, description = "Over the slot's `max_upload_bytes`", body = ErrorBody),
    ))]
async fn upload_candidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Body,
) -> Result<(StatusCode, axum::Json<CandidateBody>)> {
    auth::require_admin(&caller)?;
    let kind = super::platform::slot(&raw)?;
    if kind != SlotKind::Admission {
        return Err(ApiError::BadRequest(format!(
            "only the admission slot takes candidates (tried with POST /v1/admission/review); not {kind}"
        )));
    }
    let bytes = super::platform::read_component(&state, kind, body).await?;
    let compiled = state
        .plugins
        .candidate(kind, bytes.to_vec())
        .await
        .map_err(|why| ApiError::BadRequest(format!("plugin refused: {}", InstallError::Refused(why))))?;
    state.store.put_plugin_candidate(kind.as_str(), compiled.sha256(), &bytes, caller.subject()).await?;
    let answer =
        CandidateBody { slot: kind.as_str(), sha256: compiled.sha256().to_owned(), size: bytes.len() };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}
