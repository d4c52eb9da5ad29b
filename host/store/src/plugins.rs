//! Plugins uploaded through the admin API, one per slot, shared by every replica; and candidate
//! plugins, kept to be tried (`POST /v1/admission/review?plugin=`) before one is rolled out.

use chrono::{DateTime, Utc};

use crate::changes::Change;
use crate::{Store, StoreError, on_pool};

/// One slot's upload, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginUpload {
    pub slot: String,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
    pub uploaded_by: String,
}

kubeop_core::from_row!(PluginUpload { slot, sha256, uploaded_at, uploaded_by });

impl Store {
    /// Every slot's upload: hash, time and uploader (not the bytes; they are read on change).
    pub async fn plugin_uploads(&self) -> Result<Vec<PluginUpload>, StoreError> {
        self.timed("plugins.list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, PluginUpload>(
                "SELECT slot, sha256, uploaded_at, uploaded_by FROM plugins"
            )
            .fetch_all(pool)
            .await)?)
        })
        .await
    }

    pub async fn plugin_bytes(&self, slot: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("plugins.get", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_scalar(
                "SELECT component FROM plugins WHERE slot = $1"
            )
            .bind(slot)
            .fetch_optional(pool)
            .await)?)
        })
        .await
    }

    pub async fn put_plugin(
        &self,
        slot: &str,
        sha256: &str,
        component: &[u8],
        uploaded_at: DateTime<Utc>,
        uploaded_by: &str,
    ) -> Result<(), StoreError> {
        self.timed("plugins.put", async {
            on_pool!(self.write, |pool| sqlx::query(
                "INSERT INTO plugins (slot, sha256, component, uploaded_at, uploaded_by) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (slot) DO UPDATE SET sha256 = excluded.sha256, component = excluded.component, \
                 uploaded_at = excluded.uploaded_at, uploaded_by = excluded.uploaded_by"
            )
            .bind(slot)
            .bind(sha256)
            .bind(component)
            .bind(uploaded_at)
            .bind(uploaded_by)
            .execute(pool)
            .await
            .map(drop))?;
            Ok(())
        })
        .await?;
        self.changed(&[Change::Plugins]).await;
        Ok(())
    }

    /// Removes a slot's upload; `false` when it had none.
    pub async fn delete_plugin(&self, slot: &str) -> Result<bool, StoreError> {
        let deleted = self
            .timed("plugins.delete", async {
                let deleted =
                    on_pool!(self.write, |pool| sqlx::query("DELETE FROM plugins WHERE slot = $1")
                        .bind(slot)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected()))?;
                Ok(deleted > 0)
            })
            .await?;
        self.changed(&[Change::Plugins]).await;
        Ok(deleted)
    }

    /// Keeps a candidate component (idempotent: its hash is its identity). A slot keeps its
    /// [`MAX_CANDIDATES`] newest; older ones are dropped in the same transaction.
    pub async fn put_plugin_candidate(
        &self,
        slot: &str,
        sha256: &str,
        component: &[u8],
        uploaded_by: &str,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        self.timed("plugins.candidate_put", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO plugin_candidates (sha256, slot, component, uploaded_at, uploaded_by) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO UPDATE SET uploaded_at = excluded.uploaded_at, \
                     uploaded_by = excluded.uploaded_by",
                )
                .bind(sha256)
                .bind(slot)
                .bind(component)
                .bind(now)
                .bind(uploaded_by)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM plugin_candidates WHERE slot = $1 AND sha256 NOT IN \
                     (SELECT sha256 FROM plugin_candidates WHERE slot = $1 ORDER BY uploaded_at DESC, sha256 LIMIT $2)",
                )
                .bind(slot)
                .bind(MAX_CANDIDATES)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(())
            })
        })
        .await?;
        // Other replicas compile it ahead of its first review.
        self.changed(&[Change::Plugins]).await;
        Ok(())
    }

    /// The sha256 of a slot's `limit` newest candidates, newest first.
    pub async fn plugin_candidate_hashes(&self, slot: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        self.timed("plugins.candidate_list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_scalar::<_, String>(
                "SELECT sha256 FROM plugin_candidates WHERE slot = $1 ORDER BY uploaded_at DESC, sha256 LIMIT $2"
            )
            .bind(slot)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
        })
        .await
    }

    /// A candidate's slot and bytes.
    pub async fn plugin_candidate(&self, sha256: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.timed("plugins.candidate_get", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, (String, Vec<u8>)>(
                "SELECT slot, component FROM plugin_candidates WHERE sha256 = $1"
            )
            .bind(sha256)
            .fetch_optional(pool)
            .await)?)
        })
        .await
    }
}

/// Candidates a slot keeps.
pub const MAX_CANDIDATES: i64 = 16;
