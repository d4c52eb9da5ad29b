//! Invoices: a tenant's hourly usage over a calendar month (UTC), priced by the pricing plugin
//! at the rates in force. When a tenant's rates change during the month, each stretch of the
//! month is priced at its own rates, so no hour is billed at a price that did not apply to it.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use kubeop_config::{BillingConfig, ConfigError};
use kubeop_core::{Invalid, Percent, Rate, Rates, TenantId, parse_decimal};
use kubeop_plugins::{Plugins, PricedLine, PricingRequest, UsageHour};
use kubeop_store::usage::HourlyUsage;
use kubeop_store::{Store, StoreError};

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn month_of(at: DateTime<Utc>) -> Self {
        Self::month(at.year(), at.month()).expect("a real date's month")
    }

    /// `YYYY-MM`, a month that has begun.
    pub fn parse(raw: &str, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let invalid = || Invalid(format!("period `{raw}` is not a month written YYYY-MM"));
        let (year, month) = raw.split_once('-').ok_or_else(invalid)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(invalid());
        }
        let period = Self::month(year.parse().map_err(|_| invalid())?, month.parse().map_err(|_| invalid())?)
            .ok_or_else(invalid)?;
        if period.start > now {
            return Err(Invalid(format!("period {raw} has not begun")));
        }
        Ok(period)
    }

    fn month(year: i32, month: u32) -> Option<Self> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let midnight =
            |date: NaiveDate| Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"));
        Some(Self { start: midnight(first), end: midnight(next) })
    }

    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.start.year(), self.start.month())
    }
}

/// Where the rates of a stretch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatesSource {
    /// Set for the tenant, in force since `effective_from`.
    Tenant { effective_from: DateTime<Utc> },
    /// The configuration's `billing.rate_*` (the tenant has none in force).
    Default,
}

/// Rates applied to `[from, to)` of the period.
#[derive(Debug, Clone)]
pub struct AppliedRates {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rates: Rates,
    pub source: RatesSource,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub description: String,
    pub quantity: Decimal,
    pub unit: String,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub tenant: TenantId,
    pub period: Period,
    pub currency: String,
    pub lines: Vec<Line>,
    /// The sum of the lines' amounts.
    pub subtotal: Decimal,
    pub rates: Vec<AppliedRates>,
    pub usage: Vec<HourlyUsage>,
}

/// What prices are worth outside any tenant: the defaults and the currency.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub default_rates: Rates,
    pub currency: String,
    pub precision: u8,
}

/// Billing as configured: prices, and what usage ingest accepts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pricing: Pricing,
    pub max_age: chrono::Duration,
    pub max_future: chrono::Duration,
    pub max_points: usize,
    /// The most one usage point may carry.
    pub max_point_cpu_milli: i64,
    pub max_point_mem_mib: i64,
    pub idempotency: chrono::Duration,
}

impl Settings {
    /// The `[billing]` settings, checked; an unusable one names its variable.
    pub fn from_config(config: &BillingConfig) -> Result<Self, ConfigError> {
        if config.precision > 28 {
            return Err(ConfigError::invalid("billing.precision", "at most 28"));
        }
        if config.currency.len() != 3 || !config.currency.chars().all(|c| c.is_ascii_uppercase()) {
            let why = format!("`{}` is not an ISO 4217 code such as USD or EUR", config.currency);
            return Err(ConfigError::invalid("billing.currency", why));
        }
        if config.idempotency_days < 35 {
            return Err(ConfigError::invalid("billing.idempotency_days", "at least 35 (days)"));
        }
        for (key, value) in [
            ("billing.max_batch_points", config.max_batch_points as i64),
            ("billing.max_age_days", config.max_age_days.into()),
            ("billing.max_point_cpu_milli", config.max_point_cpu_milli),
            ("billing.max_point_mem_mib", config.max_point_mem_mib),
        ] {
            if value < 1 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        let rate = |key: &str, raw: &str| Rate::parse(raw).map_err(|e| ConfigError::invalid(key, e));
        let default_rates = Rates {
            cpu_milli: rate("billing.rate_cpu_milli", &config.rate_cpu_milli)?,
            mem_mib: rate("billing.rate_mem_mib", &config.rate_mem_mib)?,
            tier: None,
            discount_percent: Percent::ZERO,
        };
        Ok(Self {
            pricing: Pricing {
                default_rates,
                currency: config.currency.clone(),
                precision: config.precision,
            },
            max_age: chrono::Duration::days(config.max_age_days.into()),
            max_future: chrono::Duration::seconds(config.max_future_secs.into()),
            max_points: config.max_batch_points,
            max_point_cpu_milli: config.max_point_cpu_milli,
            max_point_mem_mib: config.max_point_mem_mib,
            idempotency: chrono::Duration::days(config.idempotency_days.into()),
        })
    }
}

/// Forgets Idempotency-Keys past their retention, hourly, until the server stops.
pub fn spawn_key_expiry(store: Store, retention: chrono::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            let before = (Utc::now() - retention).timestamp();
            match store.forget_idempotency_keys(before).await {
                Ok(0) => {}
                Ok(forgotten) => tracing::info!(forgotten, "expired idempotency keys"),
                Err(error) => tracing::warn!(%error, "cannot expire idempotency keys"),
            }
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pricing plugin failed or answered nonsense.
    #[error("pricing unavailable: {0}")]
    Pricing(String),
}

pub async fn invoice(
    store: &Store,
    plugins: &Plugins,
    pricing: &Pricing,
    tenant: &TenantId,
    period: Period,
) -> Result<Invoice, InvoiceError> {
    store.get_tenant(tenant).await?;
    let history = store.tenant_rates(tenant).await?;
    let usage = store.hourly_usage(tenant, period.start.timestamp(), period.end.timestamp()).await?;
    let stretches = stretches(&history, pricing, period);
    let mut lines = Vec::new();
    for stretch in &stretches {
        let hours = usage
            .iter()
            .filter(|h| h.hour >= stretch.from.timestamp() && h.hour < stretch.to.timestamp())
            .map(|h| UsageHour { hour: h.hour, cpu_milli: h.cpu_milli as u64, mem_mib: h.mem_mib as u64 })
            .collect();
        let request = PricingRequest {
            tenant: tenant.clone(),
            from: stretch.from.timestamp(),
            to: stretch.to.timestamp(),
            rates: stretch.rates.clone(),
            currency: pricing.currency.clone(),
            precision: pricing.precision,
            usage: hours,
        };
        let answer = plugins.price(request).await.map_err(|e| InvoiceError::Pricing(e.message))?;
        for line in answer
            .map_err(|refusal| InvoiceError::Pricing(format!("the pricing plugin refused: {refusal}")))?
        {
            lines.push(exact_line(line)?);
        }
    }
    let subtotal = lines.iter().try_fold(Decimal::ZERO, |sum, line| sum.checked_add(line.amount));
    let subtotal =
        subtotal.ok_or_else(|| InvoiceError::Pricing("the invoice total does not fit a decimal".into()))?;
    Ok(Invoice {
        tenant: tenant.clone(),
        period,
        currency: pricing.currency.clone(),
        lines,
        subtotal,
        rates: stretches,
        usage,
    })
}

/// A plugin's line with its numbers parsed exactly.
fn exact_line(line: PricedLine) -> Result<Line, InvoiceError> {
    let number = |field: &str, raw: &str| {
        parse_decimal(raw).map_err(|_| {
            InvoiceError::Pricing(format!(
                "the pricing plugin returned {field} `{raw}` for `{}`, not a decimal",
                line.description
            ))
        })
    };
    Ok(Line {
        quantity: number("quantity", &line.quantity)?,
        unit_price: number("unit_price", &line.unit_price)?,
        amount: number("amount", &line.amount)?,
        description: line.description,
        unit: line.unit,
    })
}

/// The period cut where the tenant's rates change, each stretch with the rates in force.
fn stretches(
    history: &[kubeop_store::rates::TenantRates],
    pricing: &Pricing,
    period: Period,
) -> Vec<AppliedRates> {
    let in_force_at = |at: DateTime<Utc>| {
        history.iter().rev().find(|r| r.effective_from <= at).map_or_else(
            || (pricing.default_rates.clone(), RatesSource::Default),
            |r| (r.rates.clone(), RatesSource::Tenant { effective_from: r.effective_from }),
        )
    };
    let mut cuts = vec![period.start];
    cuts.extend(history.iter().map(|r| r.effective_from).filter(|at| *at > period.start && *at < period.end));
    cuts.push(period.end);
    cuts.windows(2)
        .map(|pair| {
            let (rates, source) = in_force_at(pair[0]);
            AppliedRates { from: pair[0], to: pair[1], rates, source }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeop_core::{Percent, Rate};
    use kubeop_store::rates::TenantRates;

    fn rates(cpu: &str) -> Rates {
        Rates {
            cpu_milli: Rate::parse(cpu).unwrap(),
            mem_mib: Rate::parse("0").unwrap(),
            tier: None,
            discount_percent: Percent::ZERO,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn periods_are_calendar_months_in_utc() {
        let now = at("2026-11-28T13:00:00Z");
        assert_eq!(
            Period::month_of(now),
            Period { start: at("2026-11-01T00:00:00Z"), end: at("2026-12-01T00:00:00Z") }
        );
        let december = Period::parse("2025-12", now).unwrap();
        assert_eq!((december.start, december.end), (at("2025-12-01T00:00:00Z"), at("2026-01-01T00:00:00Z")));
        assert_eq!(december.label(), "2025-12");
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2027-01"] {
            assert!(Period::parse(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_changes_cut_the_month_into_stretches() {
        let pricing = Pricing { default_rates: rates("1"), currency: "USD".into(), precision: 2 };
        let period = Period::parse("2026-11", at("2026-11-28T00:00:00Z")).unwrap();
        let record = |from: &str, cpu: &str| TenantRates {
            effective_from: at(from),
            rates: rates(cpu),
            created_at: at(from),
            created_by: "ops".into(),
        };
        // No rates of its own: the defaults, for the whole month.
        let whole = stretches(&[], &pricing, period);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].source, RatesSource::Default);
        // Rates from before the month, changed on the 15th.
        let history = [
            record("2026-10-01T00:00:00Z", "2"),
            record("2026-11-15T00:00:00Z", "3"),
            record("2026-12-01T00:00:00Z", "4"),
        ];
        let cut = stretches(&history, &pricing, period);
        let summary: Vec<(DateTime<Utc>, DateTime<Utc>, String)> =
            cut.iter().map(|s| (s.from, s.to, s.rates.cpu_milli.to_string())).collect();
        assert_eq!(
            summary,
            vec![
                (at("2026-11-01T00:00:00Z"), at("2026-11-15T00:00:00Z"), "2".to_owned()),
                (at("2026-11-15T00:00:00Z"), at("2026-12-01T00:00:00Z"), "3".to_owned()),
            ]
        );
        // Rates that start mid-month after a stretch of defaults.
        let late = stretches(&[record("2026-11-10T00:00:00Z", "5")], &pricing, period);
        assert_eq!(
            late.iter().map(|s| s.source.clone()).collect::<Vec<_>>(),
            vec![RatesSource::Default, RatesSource::Tenant { effective_from: at("2026-11-10T00:00:00Z") },]
        );
    }
}
