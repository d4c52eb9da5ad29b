//! `/v1/invoices/{tenantID}`: a calendar month of a tenant's usage, priced.

use std::time::Instant;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiError, ApiErrors, Result};
use super::extract::{PathId, Query};
use super::rates::{RatesBody, exact_number};
use crate::auth::{self, Caller};
use crate::billing::{self, InvoiceError, Period, RatesSource};
use kubeop_core::{Hour, TenantId};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_invoice))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct InvoiceParams {
    /// The month, `YYYY-MM` (UTC); default the current one.
    #[param(example = "2026-11", pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    period: Option<String>,
}

/// Money and quantities are JSON numbers written with their exact digits: parse them as
/// decimals, not floats.
#[derive(Serialize, utoipa::ToSchema)]
struct InvoiceBody {
    tenant_id: TenantId,
    #[schema(example = "2026-11")]
    period: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    #[schema(example = "USD")]
    currency: String,
    lines: Vec<LineBody>,
    /// The sum of the lines' amounts.
    #[schema(value_type = f64, example = 123.45)]
    subtotal: Box<RawValue>,
    /// The rates that applied, one entry per stretch of the month with the same rates.
    rates: Vec<AppliedRatesBody>,
    /// The hourly usage the invoice was computed from, oldest first.
    usage: Vec<UsageBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LineBody {
    description: String,
    #[schema(value_type = f64)]
    quantity: Box<RawValue>,
    unit: String,
    #[schema(value_type = f64)]
    unit_price: Box<RawValue>,
    #[schema(value_type = f64)]
    amount: Box<RawValue>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AppliedRatesBody {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[serde(flatten)]
    rates: RatesBody,
    /// `tenant` (set with PUT /v1/tenants/{id}/rates) or `default` (the configuration).
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_from: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UsageBody {
    hour: DateTime<Utc>,
    cpu_milli: i64,
    mem_mib: i64,
}

/// A tenant's invoice for a month (admin, or the tenant itself). A failing pricing plugin
/// answers 503 with the reason.
#[utoipa::path(get, path = "/v1/invoices/{tenantID}", tag = "billing",
    params(("tenantID" = TenantId, Path, description = "Tenant id"), InvoiceParams),
    responses((status = 200, description = "The invoice for the period, priced by the pricing plugin", body = InvoiceBody), ApiErrors))]
async fn get_invoice(
    State(state): State<AppState>,
    caller: Caller,
    PathId(tenant): PathId<TenantId>,
    Query(params): Query<InvoiceParams>,
) -> Result<axum::Json<InvoiceBody>> {
    auth::may_read_billing(&caller, &tenant)?;
    let now = Utc::now();
    let period = match &params.period {
        Some(raw) => Period::parse(raw, now)?,
        None => Period::month_of(now),
    };
    let started = Instant::now();
    let invoice = billing::invoice(&state.store, &state.plugins, &state.billing.pricing, &tenant, period)
        .await
        .map_err(|e| match e {
            InvoiceError::Store(store) => store.into(),
            pricing @ InvoiceError::Pricing(_) => ApiError::Unavailable(pricing.to_string()),
        })?;
    state.metrics.invoice_pricing_seconds.observe(started.elapsed().as_secs_f64());
    state.metrics.invoices.inc();
    Ok(axum::Json(InvoiceBody {
        tenant_id: invoice.tenant,
        period: period.label(),
        start: period.start,
        end: period.end,
        currency: invoice.currency,
        lines: invoice
            .lines
            .into_iter()
            .map(|line| LineBody {
                description: line.description,
                quantity: exact_number(line.quantity),
                unit: line.unit,
                unit_price: exact_number(line.unit_price),
                amount: exact_number(line.amount),
            })
            .collect(),
        subtotal: exact_number(invoice.subtotal),
        rates: invoice
            .rates
            .iter()
            .map(|applied| AppliedRatesBody {
                from: applied.from,
                to: applied.to,
                rates: RatesBody::new(&applied.rates),
                source: match applied.source {
                    RatesSource::Tenant { .. } => "tenant",
                    RatesSource::Default => "default",
                },
                effective_from: match applied.source {
                    RatesSource::Tenant { effective_from } => Some(effective_from),
                    RatesSource::Default => None,
                },
            })
            .collect(),
        usage: invoice
            .usage
            .iter()
            .map(|h| UsageBody {
                hour: Hour::from_seconds(h.hour).start(),
                cpu_milli: h.cpu_milli,
                mem_mib: h.mem_mib,
            })
            .collect(),
    }))
}
