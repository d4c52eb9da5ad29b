//! Registered Kubernetes clusters. The kubeconfig is stored sealed (the caller seals it with the
//! KMS, the cluster id as associated data) and only ever read back to build a client.

use chrono::Utc;

use crate::{Store, StoreError, on_pool, outbox, violated_unique};
use kubeop_core::{Cluster, ClusterId, Name, Page};

macro_rules! columns {
    () => {
        "id, name, server, created_at"
    };
}

fn not_found(id: &ClusterId) -> StoreError {
    StoreError::NotFound(format!("cluster {id} not found"))
}

impl Store {
    /// Registers a cluster under `id` (chosen by the caller, who sealed `kubeconfig` with it).
    pub async fn create_cluster(
        &self,
        id: &ClusterId,
        name: &Name,
        server: &str,
        kubeconfig: &[u8],
    ) -> Result<Cluster, StoreError> {
        let sql = concat!(
            "INSERT INTO clusters (id, name, server, kubeconfig, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            columns!()
        );
        let now = Utc::now();
        let cluster = self
            .timed("clusters.create", async {
                on_pool!(self.write, |pool| {
                    let mut tx = pool.begin().await?;
                    let cluster = sqlx::query_as::<_, Cluster>(sql)
                        .bind(id)
                        .bind(name)
                        .bind(server)
                        .bind(kubeconfig)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| {
                            if violated_unique(&e).is_some() {
                                StoreError::Conflict(format!("a cluster named `{name}` already exists"))
                            } else {
                                StoreError::from(e)
                            }
                        })?;
                    // A new cluster gets the platform policy's ConfigMap like the others.
                    sqlx::query(outbox::MARK_POLICY_REGISTERED)
                        .bind(outbox::now_ms())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(cluster)
                })
            })
            .await?;
        self.outbox_written.notify_one();
        Ok(cluster)
    }

    pub async fn get_cluster(&self, id: &ClusterId) -> Result<Cluster, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM clusters WHERE id = $1");
        self.timed("clusters.get", async {
            on_pool!(self.read, |pool| sqlx::query_as::<_, Cluster>(sql).bind(id).fetch_optional(pool).await)?
                .ok_or_else(|| not_found(id))
        })
        .await
    }

    /// Newest first.
    pub async fn list_clusters(&self, page: &Page) -> Result<Vec<Cluster>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM clusters WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        );
        self.timed("clusters.list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, Cluster>(sql)
                .bind(page.after.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await)?)
        })
        .await
    }

    /// Every registered cluster's id.
    pub async fn cluster_ids(&self) -> Result<Vec<ClusterId>, StoreError> {
        self.timed("clusters.ids", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_scalar::<_, ClusterId>(
                "SELECT id FROM clusters ORDER BY id"
            )
            .fetch_all(pool)
            .await)?)
        })
        .await
    }

    /// The sealed kubeconfig of a cluster.
    pub async fn cluster_kubeconfig(&self, id: &ClusterId) -> Result<Vec<u8>, StoreError> {
        self.timed("clusters.kubeconfig", async {
            on_pool!(self.read, |pool| sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT kubeconfig FROM clusters WHERE id = $1"
            )
            .bind(id)
            .fetch_optional(pool)
            .await)?
            .ok_or_else(|| not_found(id))
        })
        .await
    }

    /// Unregisters a cluster no tenant uses; what its outbox still held goes with it (nothing
    /// will reconcile that cluster any more).
    pub async fn delete_cluster(&self, id: &ClusterId) -> Result<(), StoreError> {
        self.timed("clusters.delete", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE cluster_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                if tenants > 0 {
                    return Err(StoreError::Conflict(format!(
                        "cluster {id} still serves {tenants} tenant(s); delete or move them first"
                    )));
                }
                sqlx::query("DELETE FROM kube_outbox WHERE cluster_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let deleted =
                    sqlx::query("DELETE FROM clusters WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if deleted.rows_affected() == 0 {
                    return Err(not_found(id));
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    /// Re-seals every stored secret with `reseal` (which answers `None` for one already under
    /// the current key), all in one transaction: any failure writes nothing. Answers how many
    /// were re-sealed and how many there are.
    pub async fn reseal_secrets<E>(
        &self,
        reseal: impl Fn(&ClusterId, &[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Result<(usize, usize), E>, StoreError> {
        on_pool!(self.write, |pool| {
            let mut tx = pool.begin().await?;
            let rows: Vec<(ClusterId, Vec<u8>)> =
                sqlx::query_as("SELECT id, kubeconfig FROM clusters ORDER BY id").fetch_all(&mut *tx).await?;
            let mut resealed = 0;
            for (id, sealed) in &rows {
                match reseal(id, sealed) {
                    Ok(Some(new)) => {
                        sqlx::query("UPDATE clusters SET kubeconfig = $2 WHERE id = $1")
                            .bind(id)
                            .bind(new)
                            .execute(&mut *tx)
                            .await?;
                        resealed += 1;
                    }
                    Ok(None) => {}
                    Err(error) => return Ok(Err(error)),
                }
            }
            tx.commit().await?;
            Ok(Ok((resealed, rows.len())))
        })
    }
}
