//! The platform policy stored through `PUT /v1/platform/policy`.

use chrono::{DateTime, Utc};

use crate::changes::Change;
use crate::{Store, StoreError, on_pool, outbox};
use kubeop_core::{Cidr, PlatformPolicy, Quantity, QuotaMax, Registry};

/// The stored policy, with when and by whom it was set.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub policy: PlatformPolicy,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

struct PolicyRow {
    image_allowlist: String,
    egress_baseline: String,
    quota_max_requests_cpu: Option<String>,
    quota_max_requests_memory: Option<String>,
    admission: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

kubeop_core::from_row!(PolicyRow {
    image_allowlist,
    egress_baseline,
    quota_max_requests_cpu,
    quota_max_requests_memory,
    admission,
    updated_at,
    updated_by
});

impl PolicyRow {
    /// Rows were validated when written; a row that no longer parses is a server error.
    fn into_stored(self) -> Result<StoredPolicy, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(format!("platform_policy.{what} is invalid").into()))
        };
        let registries: Vec<String> =
            serde_json::from_str(&self.image_allowlist).map_err(|_| corrupt("image_allowlist"))?;
        let cidrs: Vec<String> =
            serde_json::from_str(&self.egress_baseline).map_err(|_| corrupt("egress_baseline"))?;
        let quantity = |raw: Option<String>, what: &str| {
            raw.map(|q| Quantity::parse(&q)).transpose().map_err(|_| corrupt(what))
        };
        Ok(StoredPolicy {
            policy: PlatformPolicy {
                image_allowlist: registries
                    .iter()
                    .map(|r| Registry::parse(r))
                    .collect::<Result<_, _>>()
                    .map_err(|_| corrupt("image_allowlist"))?,
                egress_baseline: cidrs
                    .iter()
                    .map(|c| Cidr::parse(c))
                    .collect::<Result<_, _>>()
                    .map_err(|_| corrupt("egress_baseline"))?,
                quota_max: QuotaMax {
                    requests_cpu: quantity(self.quota_max_requests_cpu, "quota_max_requests_cpu")?,
                    requests_memory: quantity(self.quota_max_requests_memory, "quota_max_requests_memory")?,
                },
                // Parsing validates every entry again (the types' `try_from`).
                admission: serde_json::from_str(&self.admission).map_err(|_| corrupt("admission"))?,
            },
            updated_at: self.updated_at,
            updated_by: self.updated_by,
        })
    }
}

impl Store {
    /// The policy set through the API, if one was.
    pub async fn platform_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        self.timed("policy.get", async {
            let row = on_pool!(self.read, |pool| {
                sqlx::query_as::<_, PolicyRow>(
                "SELECT image_allowlist, egress_baseline, quota_max_requests_cpu, quota_max_requests_memory, \
                 admission, updated_at, updated_by FROM platform_policy WHERE id = 1"
            )
            .fetch_optional(pool)
            .await
            })?;
            row.map(PolicyRow::into_stored).transpose()
        })
        .await
    }

    pub async fn put_platform_policy(
        &self,
        policy: &PlatformPolicy,
        updated_by: &str,
    ) -> Result<(), StoreError> {
        let registries: Vec<&str> = policy.image_allowlist.iter().map(Registry::as_str).collect();
        let cidrs: Vec<&str> = policy.egress_baseline.iter().map(Cidr::as_str).collect();
        let registries = serde_json::to_string(&registries).expect("strings serialise");
        let cidrs = serde_json::to_string(&cidrs).expect("strings serialise");
        let cpu = policy.quota_max.requests_cpu.as_ref().map(Quantity::as_str);
        let memory = policy.quota_max.requests_memory.as_ref().map(Quantity::as_str);
        let admission = serde_json::to_string(&policy.admission).expect("the admission policy serialises");
        let now = Utc::now();
        self.timed("policy.put", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                "INSERT INTO platform_policy (id, image_allowlist, egress_baseline, quota_max_requests_cpu, \
                 quota_max_requests_memory, updated_at, updated_by, admission) VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET image_allowlist = excluded.image_allowlist, \
                 egress_baseline = excluded.egress_baseline, quota_max_requests_cpu = excluded.quota_max_requests_cpu, \
                 quota_max_requests_memory = excluded.quota_max_requests_memory, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by, admission = excluded.admission"
            )
            .bind(&registries)
            .bind(&cidrs)
            .bind(cpu)
            .bind(memory)
            .bind(now)
            .bind(updated_by)
            .bind(&admission)
            .execute(&mut *tx)
            .await?;
                // Every cluster gets the new policy's ConfigMap, through the outbox.
                let no_cluster: Option<&str> = None;
                sqlx::query(outbox::MARK_POLICY_REGISTERED).bind(outbox::now_ms()).bind(no_cluster).execute(&mut *tx).await?;
                sqlx::query(outbox::MARK_POLICY_DEFAULT).bind(outbox::now_ms()).bind(self.default_cluster).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(())
            })?;
            self.outbox_written.notify_one();
            Ok(())
        })
        .await?;
        self.changed(&[Change::Policy]).await;
        Ok(())
    }
}
