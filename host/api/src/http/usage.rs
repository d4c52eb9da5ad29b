//! `/v1/usage/…`: metered usage in, totals out.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiErrors, BodyErrors, ErrorBody, Result, invalid_field};
use super::extract::{Query, is_json, read_body};
use crate::auth::{self, Caller};
use kubeop_core::{BatchError, PointError, TenantId, UsageBatch, UsageWindow, parse_timestamp};
use kubeop_store::usage::{Idempotency, IngestOutcome};

/// Bytes a point may take in a batch: a typical point is about 120 (see the OpenAPI example),
/// so this leaves room for generous spacing and key order while a 10,000-point body stays
/// under 3 MiB.
pub const BYTES_PER_POINT: usize = 256;

pub fn router() -> OpenApiRouter<AppState> {
    // The ingest route reads its body itself, after the caller is checked, within
    // `billing.max_batch_points` points' worth of bytes.
    OpenApiRouter::new().routes(routes!(ingest_usage)).routes(routes!(usage_snapshot))
}

/// One metered sample (documentation of the ingest body).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Point {
    /// RFC 3339 with a zone; the point is added into the UTC hour it falls in.
    #[schema(example = "2026-11-28T12:00:00Z", format = DateTime)]
    ts: String,
    tenant_id: TenantId,
    /// Milli-CPU used (whole, zero to `billing.max_point_cpu_milli`).
    #[schema(example = 100, minimum = 0, maximum = 1_000_000_000)]
    cpu_milli: i64,
    /// MiB of memory used (whole, zero to `billing.max_point_mem_mib`).
    #[schema(example = 200, minimum = 0, maximum = 1_000_000_000)]
    mem_mib: i64,
}

/// The ingest body as the document describes it: an array of at most `billing.max_batch_points`
/// (10,000 by default) points.
struct Batch;

impl utoipa::PartialSchema for Batch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::ToSchema;
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(Point::name()))
            .max_items(Some(10_000))
            .into()
    }
}

impl utoipa::ToSchema for Batch {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::{PartialSchema, ToSchema};
        schemas.push((Point::name().into(), Point::schema()));
        <Point as ToSchema>::schemas(schemas);
    }
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
struct Ingested {
    /// Points in the request.
    accepted: usize,
    /// Tenant-hours they were added into.
    buckets: usize,
}

/// A refused batch: the reason, and each bad point with its index.
#[derive(Serialize, utoipa::ToSchema)]
struct RefusedBatch {
    error: String,
    /// Each invalid point with its index (absent when the request as a whole was refused).
    #[schema(required = false)]
    points: Vec<PointError>,
}

fn refused(state: &AppState, reason: &str, status: StatusCode, body: impl Serialize) -> Response {
    state.metrics.usage_refused.with_label_values(&[reason]).inc();
    (status, axum::Json(body)).into_response()
}

fn points_refused(state: &AppState, count: usize, points: Vec<PointError>) -> Response {
    let error = format!("{} of {count} points are invalid; nothing was written", points.len());
    refused(state, "invalid", StatusCode::BAD_REQUEST, RefusedBatch { error, points })
}

/// Add usage points into their tenants' hourly buckets (admin, or a tenant-role token for its
/// own tenant). The batch is atomic: one bad point refuses it all, naming every bad point. With
/// an `Idempotency-Key` header, a retry answers as the first request did and adds nothing.
#[utoipa::path(post, path = "/v1/usage/ingest", tag = "usage", request_body = Batch,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "Makes retries safe: up to 255 printable characters, remembered 35 days per tenant")),
    responses(
        ApiErrors, BodyErrors,
        (status = 200, description = "Added (or, with `Idempotent-Replayed: true`, added by an earlier request)", body = Ingested),
        (status = 400, description = "Invalid points, each with its index; nothing was written", body = RefusedBatch),
        (status = 409, description = "The Idempotency-Key was used for different points", body = ErrorBody),
        (status = 413, description = "More points than `billing.max_batch_points`", body = ErrorBody),
    ))]
async fn ingest_usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    // Everything that needs no body is checked before a byte of it is read.
    if let Caller::Project { .. } = caller {
        state.metrics.usage_refused.with_label_values(&["forbidden"]).inc();
        return Err(ApiError::Forbidden("project tokens may not send usage".into()));
    }
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "expected a body with Content-Type: application/json".into(),
        ));
    }
    let key = idempotency_key(&headers)?;
    let settings = &state.billing;
    let limit = settings.max_points.saturating_mul(BYTES_PER_POINT);
    let bytes = read_body(body, limit, || {
        state.metrics.usage_refused.with_label_values(&["too_large"]).inc();
        format!("the body is over {limit} bytes ({} points of {BYTES_PER_POINT} bytes)", settings.max_points)
    })
    .await?;
    let window = UsageWindow {
        now: chrono::Utc::now(),
        max_age: settings.max_age,
        max_future: settings.max_future,
        max_cpu_milli: settings.max_point_cpu_milli,
        max_mem_mib: settings.max_point_mem_mib,
        max_points: settings.max_points,
    };
    let batch = match UsageBatch::parse(&bytes, &window) {
        Ok(batch) => batch,
        Err(BatchError::Malformed(why)) => {
            let error = ErrorBody { error: format!("malformed JSON: {why}") };
            return Ok(refused(&state, "invalid", StatusCode::BAD_REQUEST, error));
        }
        Err(BatchError::NotAnArray) => {
            let error = ErrorBody { error: "the body must be a JSON array of points".into() };
            return Ok(refused(&state, "invalid", StatusCode::BAD_REQUEST, error));
        }
        Err(BatchError::TooMany { count, max }) => {
            let error = ErrorBody { error: format!("{count} points in one request; at most {max}") };
            return Ok(refused(&state, "too_large", StatusCode::PAYLOAD_TOO_LARGE, error));
        }
        Err(BatchError::Points { count, errors }) => return Ok(points_refused(&state, count, errors)),
    };
    let count = batch.points.len();
    if let Err(denied) = auth::may_ingest_usage(&caller, batch.points.iter().map(|p| &p.tenant)) {
        state.metrics.usage_refused.with_label_values(&["forbidden"]).inc();
        return Err(denied.into());
    }
    let buckets = match batch.buckets() {
        Ok(buckets) => buckets,
        Err(overflow) => return Ok(overflowed(&state, count, overflow)),
    };
    let answer = Ingested { accepted: batch.points.len(), buckets: buckets.len() };
    let response = serde_json::to_string(&answer).expect("the answer serialises");
    let fingerprint = batch.fingerprint();
    let scope = match &caller {
        Caller::Tenant { tenant, .. } => tenant.as_str(),
        _ => "admin",
    };
    let idempotency =
        key.as_deref().map(|key| Idempotency { scope, key, request_hash: &fingerprint, response: &response });
    match state.store.ingest_usage(&buckets, idempotency, window.now.timestamp()).await? {
        IngestOutcome::Applied => {
            state.metrics.usage_points.inc_by(batch.points.len() as u64);
            Ok(json_text(StatusCode::OK, response))
        }
        IngestOutcome::Replay { request_hash, response } if request_hash == fingerprint => {
            state.metrics.usage_replays.inc();
            let mut replay = json_text(StatusCode::OK, response);
            replay.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(replay)
        }
        IngestOutcome::Replay { .. } => {
            state.metrics.usage_refused.with_label_values(&["key_reused"]).inc();
            Err(ApiError::Conflict("this Idempotency-Key was used for a different batch of points".into()))
        }
        IngestOutcome::UnknownTenants(unknown) => {
            let errors = batch
                .points
                .iter()
                .enumerate()
                .filter(|(_, p)| unknown.is_empty() || unknown.contains(&p.tenant))
                .map(|(index, p)| PointError {
                    index,
                    error: format!("tenant_id: tenant {} not found", p.tenant),
                })
                .collect();
            Ok(points_refused(&state, count, errors))
        }
        IngestOutcome::Overflow { tenant, hour } => {
            Ok(overflowed(&state, count, batch.overflow(&tenant, hour)))
        }
    }
}

/// A tenant's hour would total more than 64 bits hold: the points that add to it, named.
fn overflowed(state: &AppState, count: usize, overflow: kubeop_core::BucketOverflow) -> Response {
    let hour = overflow.hour.start().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let points = overflow
        .indices
        .iter()
        .map(|&index| PointError {
            index,
            error: format!(
                "tenant {}: its usage for the hour {hour} would exceed {}, the most an hour can hold",
                overflow.tenant,
                i64::MAX
            ),
        })
        .collect::<Vec<_>>();
    state.metrics.usage_refused.with_label_values(&["overflow"]).inc();
    let error = format!(
        "{} of {count} points would take tenant {}'s usage for {hour} past {}; nothing was written",
        points.len(),
        overflow.tenant,
        i64::MAX
    );
    (StatusCode::BAD_REQUEST, axum::Json(RefusedBatch { error, points })).into_response()
}

fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters".into())
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SnapshotParams {
    /// Only this tenant's usage.
    #[serde(rename = "tenantID", alias = "tenantId", alias = "tenant_id")]
    #[param(rename = "tenantID", value_type = Option<TenantId>)]
    tenant_id: Option<String>,
    /// Hours starting at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Hours starting before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Snapshot {
    totals: Totals,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Totals {
    /// Milli-CPU hours. Summed exactly, whatever the number of hours (beyond 64 bits too).
    #[schema(value_type = u64)]
    cpu_milli: i128,
    /// MiB hours.
    #[schema(value_type = u64)]
    mem_mib: i128,
}

/// Total usage, optionally of one tenant and a time range (admin).
#[utoipa::path(get, path = "/v1/usage/snapshot", tag = "usage", params(SnapshotParams),
    responses((status = 200, description = "Hourly usage in the window", body = Snapshot), ApiErrors))]
async fn usage_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SnapshotParams>,
) -> Result<axum::Json<Snapshot>> {
    auth::require_admin(&caller)?;
    let tenant =
        params.tenant_id.as_deref().map(TenantId::parse).transpose().map_err(invalid_field("tenantID"))?;
    let time = |name: &str, raw: &Option<String>| {
        raw.as_deref()
            .map(|t| parse_timestamp(t).map(|at| at.timestamp()))
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("{name}: {}", e.trim_start_matches("ts "))))
    };
    let (from, to) = (time("from", &params.from)?, time("to", &params.to)?);
    let (cpu_milli, mem_mib) = state.store.usage_totals(tenant.as_ref(), from, to).await?;
    Ok(axum::Json(Snapshot { totals: Totals { cpu_milli, mem_mib } }))
}
