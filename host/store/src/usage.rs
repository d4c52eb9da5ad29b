//! Usage buckets and the Idempotency-Keys of ingest requests.

use crate::{Pool, Store, StoreError, is_foreign_key_violation, on_pool};
use kubeop_core::{Hour, TenantId};

/// A key to remember an ingest request by, with what to answer its retries.
pub struct Idempotency<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub response: &'a str,
}

pub enum IngestOutcome {
    Applied,
    /// Points for tenants that do not exist; nothing was written.
    UnknownTenants(Vec<TenantId>),
    /// The key was used before: what the first request was and got. Nothing was written.
    Replay {
        request_hash: String,
        response: String,
    },
    /// This tenant's hour would total more than 64 bits hold; nothing was written.
    Overflow {
        tenant: TenantId,
        hour: Hour,
    },
}

/// Usage of one tenant during one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyUsage {
    pub hour: i64,
    pub cpu_milli: i64,
    pub mem_mib: i64,
}

kubeop_core::from_row!(HourlyUsage { hour, cpu_milli, mem_mib });

/// A numeric overflow from either engine: PostgreSQL's `bigint out of range` (22003), or the
/// SQLite CHECK that refuses a sum turned into a float.
fn is_overflow(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else { return false };
    db.code().as_deref() == Some("22003")
        || (db.message().contains("CHECK constraint failed") && db.message().contains("typeof"))
}

impl Store {
    /// Adds `buckets` (tenant, hour, cpu_milli, mem_mib) to the stored totals in one
    /// transaction, with the Idempotency-Key when there is one: the key is recorded only if the
    /// points are, and a key seen before writes nothing.
    pub async fn ingest_usage(
        &self,
        buckets: &[(TenantId, Hour, i64, i64)],
        idempotency: Option<Idempotency<'_>>,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let mut tenants: Vec<&str> = buckets.iter().map(|(t, ..)| t.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        // The transaction, written once; `$known`, `$stored` and `$upsert` are the engine's
        // set-based statements.
        macro_rules! ingest {
            ($pool:expr, $known:ident, $stored:ident, $upsert:ident) => {{
                let mut tx = $pool.begin().await?;
                if let Some(key) = &idempotency {
                    let claimed = sqlx::query(
                        "INSERT INTO usage_idempotency (scope, key, request_hash, response, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                    )
                    .bind(key.scope)
                    .bind(key.key)
                    .bind(key.request_hash)
                    .bind(key.response)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        let (request_hash, response): (String, String) = sqlx::query_as(
                            "SELECT request_hash, response FROM usage_idempotency WHERE scope = $1 AND key = $2",
                        )
                        .bind(key.scope)
                        .bind(key.key)
                        .fetch_one(&mut *tx)
                        .await?;
                        return Ok(IngestOutcome::Replay { request_hash, response });
                    }
                }
                let known = $known(&mut tx, &tenants).await?;
                if known.len() < tenants.len() {
                    let unknown = tenants
                        .iter()
                        .filter(|t| !known.iter().any(|k| k == *t))
                        .map(|t| TenantId::parse(t).expect("ids in a batch are valid"))
                        .collect();
                    return Ok(IngestOutcome::UnknownTenants(unknown));
                }
                // Name the hour that would overflow, rather than let the statement fail as a whole.
                for (tenant, hour, cpu, mem) in $stored(&mut tx, buckets).await? {
                    let (cpu, mem) = (i128::from(cpu), i128::from(mem));
                    let adding = buckets.iter().find(|(t, h, ..)| t.as_str() == tenant && h.seconds() == hour);
                    if let Some((tenant, hour, add_cpu, add_mem)) = adding
                        && (cpu + i128::from(*add_cpu) > i128::from(i64::MAX)
                            || mem + i128::from(*add_mem) > i128::from(i64::MAX))
                    {
                        return Ok(IngestOutcome::Overflow { tenant: tenant.clone(), hour: *hour });
                    }
                }
                match $upsert(&mut tx, buckets).await {
                    Ok(()) => {}
                    // The rows checked above are locked; an hour that did not exist then cannot
                    // hold enough to overflow. The statement's own check stays as the last word.
                    Err(e) if is_overflow(&e) => {
                        return Err(StoreError::Conflict(
                            "an hourly total changed while this batch was being added; retry it".into(),
                        ));
                    }
                    // A tenant deleted while the batch was being checked.
                    Err(e) if is_foreign_key_violation(&e) => return Ok(IngestOutcome::UnknownTenants(Vec::new())),
                    Err(e) => return Err(e.into()),
                }
                tx.commit().await?;
                Ok(IngestOutcome::Applied)
            }};
        }
        self.timed("usage.ingest", async {
            match &self.write {
                Pool::Postgres(pool) => ingest!(pool, postgres_known, postgres_stored, postgres_upsert),
                Pool::Sqlite(pool) => ingest!(pool, sqlite_known, sqlite_stored, sqlite_upsert),
            }
        })
        .await
    }

    /// Total usage, optionally of one tenant and of hours starting in `[from, to)`. Sums over
    /// many hours can leave 64 bits, so each total is summed in two halves (the high and the
    /// low 32 bits of every hourly value, neither of which can overflow) and put together here.
    pub async fn usage_totals(
        &self,
        tenant: Option<&TenantId>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<(i128, i128), StoreError> {
        let (cpu_high, cpu_low, mem_high, mem_low): (i64, i64, i64, i64) = self
            .timed("usage.totals", async {
                Ok(on_pool!(self.read, |pool| sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(cpu_milli / 4294967296), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(cpu_milli % 4294967296), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(mem_mib / 4294967296), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(mem_mib % 4294967296), 0) AS BIGINT) \
                     FROM usage_hourly WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR hour >= $2) \
                     AND ($3 IS NULL OR hour < $3)"
                )
                .bind(tenant)
                .bind(from)
                .bind(to)
                .fetch_one(pool)
                .await)?)
            })
            .await?;
        let whole = |high: i64, low: i64| (i128::from(high) << 32) + i128::from(low);
        Ok((whole(cpu_high, cpu_low), whole(mem_high, mem_low)))
    }

    /// A tenant's hourly usage in `[from, to)`, oldest first.
    pub async fn hourly_usage(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        self.timed("usage.hourly", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, HourlyUsage>(
                "SELECT hour, cpu_milli, mem_mib FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 \
                 ORDER BY hour"
            )
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?)
        })
        .await
    }

    /// Forgets Idempotency-Keys recorded before `before`; returns how many.
    pub async fn forget_idempotency_keys(&self, before: i64) -> Result<u64, StoreError> {
        self.timed("usage.forget_keys", async {
            Ok(on_pool!(self.write, |pool| sqlx::query(
                "DELETE FROM usage_idempotency WHERE created_at < $1"
            )
            .bind(before)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?)
        })
        .await
    }
}

async fn postgres_known(conn: &mut sqlx::PgConnection, tenants: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE id = ANY($1)").bind(tenants).fetch_all(conn).await
}

async fn sqlite_known(
    conn: &mut sqlx::SqliteConnection,
    tenants: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE id IN (SELECT value FROM json_each($1))")
        .bind(serde_json::to_string(tenants).expect("strings serialise"))
        .fetch_all(conn)
        .await
}

/// The stored totals of the batch's tenant-hours.
async fn postgres_stored(
    conn: &mut sqlx::PgConnection,
    buckets: &[(TenantId, Hour, i64, i64)],
) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    let ids: Vec<&str> = buckets.iter().map(|(t, ..)| t.as_str()).collect();
    let hours: Vec<i64> = buckets.iter().map(|(_, h, ..)| h.seconds()).collect();
    sqlx::query_as(
        "SELECT tenant_id, hour, cpu_milli, mem_mib FROM usage_hourly \
         WHERE (tenant_id, hour) IN (SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[])) FOR UPDATE",
    )
    .bind(&ids)
    .bind(&hours)
    .fetch_all(conn)
    .await
}

async fn sqlite_stored(
    conn: &mut sqlx::SqliteConnection,
    buckets: &[(TenantId, Hour, i64, i64)],
) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    let keys: Vec<(&str, i64)> = buckets.iter().map(|(t, h, ..)| (t.as_str(), h.seconds())).collect();
    sqlx::query_as(
        "SELECT tenant_id, hour, cpu_milli, mem_mib FROM usage_hourly \
         WHERE (tenant_id, hour) IN (SELECT value ->> 0, value ->> 1 FROM json_each($1))",
    )
    .bind(serde_json::to_string(&keys).expect("keys serialise"))
    .fetch_all(conn)
    .await
}

/// One statement for the whole batch: the buckets as parallel arrays.
async fn postgres_upsert(
    conn: &mut sqlx::PgConnection,
    buckets: &[(TenantId, Hour, i64, i64)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<&str> = buckets.iter().map(|(t, ..)| t.as_str()).collect();
    let hours: Vec<i64> = buckets.iter().map(|(_, h, ..)| h.seconds()).collect();
    let cpu: Vec<i64> = buckets.iter().map(|(_, _, c, _)| *c).collect();
    let mem: Vec<i64> = buckets.iter().map(|(.., m)| *m).collect();
    sqlx::query(
        "INSERT INTO usage_hourly (tenant_id, hour, cpu_milli, mem_mib) \
         SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) \
         ON CONFLICT (tenant_id, hour) DO UPDATE SET \
         cpu_milli = usage_hourly.cpu_milli + excluded.cpu_milli, mem_mib = usage_hourly.mem_mib + excluded.mem_mib",
    )
    .bind(&ids)
    .bind(&hours)
    .bind(&cpu)
    .bind(&mem)
    .execute(conn)
    .await
    .map(drop)
}

/// One statement for the whole batch: the buckets as a JSON array of rows.
async fn sqlite_upsert(
    conn: &mut sqlx::SqliteConnection,
    buckets: &[(TenantId, Hour, i64, i64)],
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&str, i64, i64, i64)> =
        buckets.iter().map(|(t, h, c, m)| (t.as_str(), h.seconds(), *c, *m)).collect();
    sqlx::query(
        "INSERT INTO usage_hourly (tenant_id, hour, cpu_milli, mem_mib) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($1) WHERE true \
         ON CONFLICT (tenant_id, hour) DO UPDATE SET \
         cpu_milli = cpu_milli + excluded.cpu_milli, mem_mib = mem_mib + excluded.mem_mib",
    )
    .bind(serde_json::to_string(&rows).expect("rows serialise"))
    .execute(conn)
    .await
    .map(drop)
}
