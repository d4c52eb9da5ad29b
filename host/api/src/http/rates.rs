//! `/v1/tenants/{id}/rates`: what a tenant pays, with its history.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::schema::Schema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiError, ApiErrors, BodyErrors, Result, invalid_field};
use super::extract::{Json, PathId};
use crate::auth::{self, Caller};
use kubeop_core::{Percent, Rate, Rates, TenantId, parse_timestamp};
use kubeop_store::rates::TenantRates;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_rates, put_rates))
}

/// A decimal as JSON text: a string (`"0.00004"`) or a number literal (`0.00004`), read
/// digit for digit, never through a float.
#[derive(Debug)]
pub struct DecimalInput(String);

impl<'de> Deserialize<'de> for DecimalInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str(text).map(DecimalInput).map_err(serde::de::Error::custom)
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(DecimalInput(text.to_owned()))
        } else {
            Err(serde::de::Error::custom(format!("expected a decimal number, not {text}")))
        }
    }
}

/// A decimal the server reads digit for digit: a JSON string holding a plain decimal (no
/// exponent), or a number literal, zero to `maximum`.
fn decimal_schema(description: &str, example: &str, maximum: Option<f64>, nullable: bool) -> Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let schema = OneOfBuilder::new()
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^\s*-?[0-9]+(\.[0-9]+)?\s*$")))
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).maximum(maximum));
    let schema = if nullable { schema.item(ObjectBuilder::new().schema_type(Type::Null)) } else { schema };
    schema.build().into()
}

fn cpu_rate_schema() -> Schema {
    decimal_schema(
        "Price of one milli-CPU for one hour: an exact decimal, as a string or a number.",
        "0.00004",
        None,
        false,
    )
}

fn mem_rate_schema() -> Schema {
    decimal_schema("Price of one MiB of memory for one hour.", "0.000005", None, false)
}

fn percent_schema() -> Schema {
    decimal_schema("Percentage off the total, 0 to 100 (default 0).", "10", Some(100.0), true)
}

/// An exact decimal written as a JSON number literal.
pub fn exact_number(value: impl std::fmt::Display) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a decimal's text is a JSON number")
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PutRates {
    /// Price of one milli-CPU for one hour: an exact decimal, as a string or a number.
    #[schema(schema_with = cpu_rate_schema)]
    cpu_milli: DecimalInput,
    /// Price of one MiB of memory for one hour.
    #[schema(schema_with = mem_rate_schema)]
    mem_mib: DecimalInput,
    /// The tenant's pricing tier, passed to the pricing plugin.
    #[schema(example = "standard")]
    tier: Option<String>,
    /// Percentage off the total, 0 to 100 (default 0).
    #[schema(schema_with = percent_schema)]
    discount_percent: Option<DecimalInput>,
    /// When these rates start to apply (default: now). Earlier hours keep their rates.
    #[schema(example = "2026-11-01T00:00:00Z")]
    effective_from: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RatesBody {
    #[schema(value_type = f64, example = 0.00004)]
    cpu_milli: Box<RawValue>,
    #[schema(value_type = f64, example = 0.000005)]
    mem_mib: Box<RawValue>,
    tier: Option<String>,
    #[schema(value_type = f64, example = 10)]
    discount_percent: Box<RawValue>,
}

impl RatesBody {
    pub fn new(rates: &Rates) -> Self {
        Self {
            cpu_milli: exact_number(rates.cpu_milli),
            mem_mib: exact_number(rates.mem_mib),
            tier: rates.tier.clone(),
            discount_percent: exact_number(rates.discount_percent),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct RatesRecord {
    #[serde(flatten)]
    rates: RatesBody,
    effective_from: DateTime<Utc>,
    created_at: DateTime<Utc>,
    created_by: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TenantRatesBody {
    tenant_id: TenantId,
    /// The rates in force now, and where they come from: `tenant` or `default`
    /// (`KUBEOP_RATE_CPU_MILLI`, `KUBEOP_RATE_MEM_MIB`).
    current: RatesBody,
    #[schema(example = "tenant")]
    source: &'static str,
    /// Every rate the tenant has had, oldest first; each applies until the next.
    history: Vec<RatesRecord>,
}

/// A tenant's rates (admin, or the tenant itself).
#[utoipa::path(get, path = "/v1/tenants/{id}/rates", tag = "billing", params(("id" = TenantId, Path, description = "Tenant id")),
    responses((status = 200, description = "The rates in force and their history", body = TenantRatesBody), ApiErrors))]
async fn get_rates(
    State(state): State<AppState>,
    caller: Caller,
    PathId(tenant): PathId<TenantId>,
) -> Result<axum::Json<TenantRatesBody>> {
    auth::may_read_billing(&caller, &tenant)?;
    state.store.get_tenant(&tenant).await?;
    let history = state.store.tenant_rates(&tenant).await?;
    let now = Utc::now();
    let (current, source) = match history.iter().rev().find(|r| r.effective_from <= now) {
        Some(record) => (RatesBody::new(&record.rates), "tenant"),
        None => (RatesBody::new(&state.billing.pricing.default_rates), "default"),
    };
    let history = history
        .into_iter()
        .map(|TenantRates { effective_from, rates, created_at, created_by }| RatesRecord {
            rates: RatesBody::new(&rates),
            effective_from,
            created_at,
            created_by,
        })
        .collect();
    Ok(axum::Json(TenantRatesBody { tenant_id: tenant, current, source, history }))
}

/// Set a tenant's rates from a moment on (admin). Rates set for the same moment are replaced.
#[utoipa::path(put, path = "/v1/tenants/{id}/rates", tag = "billing", params(("id" = TenantId, Path, description = "Tenant id")),
    request_body = PutRates, responses((status = 204, description = "Stored"), ApiErrors, BodyErrors))]
async fn put_rates(
    State(state): State<AppState>,
    caller: Caller,
    PathId(tenant): PathId<TenantId>,
    Json(body): Json<PutRates>,
) -> Result<StatusCode> {
    auth::require_admin(&caller)?;
    let rates = Rates {
        cpu_milli: Rate::parse(&body.cpu_milli.0).map_err(invalid_field("cpu_milli"))?,
        mem_mib: Rate::parse(&body.mem_mib.0).map_err(invalid_field("mem_mib"))?,
        tier: body.tier.filter(|t| !t.trim().is_empty()),
        discount_percent: match &body.discount_percent {
            Some(raw) => Percent::parse(&raw.0).map_err(invalid_field("discount_percent"))?,
            None => Percent::ZERO,
        },
    };
    if rates.tier.as_ref().is_some_and(|t| t.len() > 64) {
        return Err(ApiError::BadRequest("tier: at most 64 characters".into()));
    }
    // Control characters (a NUL above all, which PostgreSQL cannot store) are no tier's name.
    if rates.tier.as_ref().is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(ApiError::BadRequest("tier: contains a control character".into()));
    }
    let effective_from = match &body.effective_from {
        Some(raw) => parse_timestamp(raw)
            .map_err(|e| ApiError::BadRequest(format!("effective_from: {}", e.trim_start_matches("ts "))))?,
        None => Utc::now(),
    };
    state.store.put_tenant_rates(&tenant, effective_from, &rates, caller.subject()).await?;
    Ok(StatusCode::NO_CONTENT)
}
