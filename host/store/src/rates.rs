//! Per-tenant rates, with their history: each applies from its `effective_from` until the next.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError, is_foreign_key_violation, on_pool};
use kubeop_core::{Percent, Rate, Rates, TenantId};

/// Rates that apply to a tenant from a moment on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRates {
    pub effective_from: DateTime<Utc>,
    pub rates: Rates,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

struct RatesRow {
    effective_from: i64,
    cpu_milli: String,
    mem_mib: String,
    tier: Option<String>,
    discount_percent: String,
    created_at: i64,
    created_by: String,
}

kubeop_core::from_row!(RatesRow {
    effective_from,
    cpu_milli,
    mem_mib,
    tier,
    discount_percent,
    created_at,
    created_by
});

impl RatesRow {
    fn into_rates(self) -> Result<TenantRates, StoreError> {
        let corrupt =
            || StoreError::Database(sqlx::Error::Decode("tenant_rates holds an invalid decimal".into()));
        let time = |seconds| DateTime::from_timestamp(seconds, 0).ok_or_else(corrupt);
        Ok(TenantRates {
            effective_from: time(self.effective_from)?,
            rates: Rates {
                cpu_milli: Rate::parse(&self.cpu_milli).map_err(|_| corrupt())?,
                mem_mib: Rate::parse(&self.mem_mib).map_err(|_| corrupt())?,
                tier: self.tier,
                discount_percent: Percent::parse(&self.discount_percent).map_err(|_| corrupt())?,
            },
            created_at: time(self.created_at)?,
            created_by: self.created_by,
        })
    }
}

impl Store {
    /// A tenant's rates, oldest first.
    pub async fn tenant_rates(&self, tenant: &TenantId) -> Result<Vec<TenantRates>, StoreError> {
        self.timed("rates.list", async {
            let rows = on_pool!(self.read, |pool| {
                sqlx::query_as::<_, RatesRow>(
                "SELECT effective_from, cpu_milli, mem_mib, tier, discount_percent, created_at, created_by \
                 FROM tenant_rates WHERE tenant_id = $1 ORDER BY effective_from"
            )
            .bind(tenant)
            .fetch_all(pool)
            .await
            })?;
            rows.into_iter().map(RatesRow::into_rates).collect()
        })
        .await
    }

    /// Sets the rates a tenant pays from `effective_from` on (replacing rates set for exactly
    /// that moment).
    pub async fn put_tenant_rates(
        &self,
        tenant: &TenantId,
        effective_from: DateTime<Utc>,
        rates: &Rates,
        created_by: &str,
    ) -> Result<(), StoreError> {
        let now = Utc::now().timestamp();
        self.timed("rates.put", async {
            on_pool!(self.write, |pool| sqlx::query(
                "INSERT INTO tenant_rates (tenant_id, effective_from, cpu_milli, mem_mib, tier, discount_percent, \
                 created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant_id, effective_from) DO UPDATE SET cpu_milli = excluded.cpu_milli, \
                 mem_mib = excluded.mem_mib, tier = excluded.tier, discount_percent = excluded.discount_percent, \
                 created_at = excluded.created_at, created_by = excluded.created_by"
            )
            .bind(tenant)
            .bind(effective_from.timestamp())
            .bind(rates.cpu_milli.to_string())
            .bind(rates.mem_mib.to_string())
            .bind(rates.tier.as_deref())
            .bind(rates.discount_percent.to_string())
            .bind(now)
            .bind(created_by)
            .execute(pool)
            .await
            .map(drop))
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::NotFound(format!("tenant {tenant} not found"))
                } else {
                    e.into()
                }
            })
        })
        .await
    }
}
