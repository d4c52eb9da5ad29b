//! Tenants: the top of the hierarchy; deleting one removes its projects and apps (cascade).

use chrono::Utc;

use crate::changes::Change;
use crate::namespaces;
use crate::outbox;
use crate::{Store, StoreError, is_foreign_key_violation, on_pool, violated_unique};
use kubeop_core::{ClusterId, Name, Namespace, Page, Tenant, TenantId};

macro_rules! columns {
    () => {
        "id, name, cluster_id, created_at"
    };
}

fn name_taken(name: &Name) -> StoreError {
    StoreError::Conflict(format!("a tenant named `{name}` already exists"))
}

fn not_found(id: &TenantId) -> StoreError {
    StoreError::NotFound(format!("tenant {id} not found"))
}

impl Store {
    /// Creates a tenant, on `cluster` or (`None`) the default cluster.
    pub async fn create_tenant(
        &self,
        name: &Name,
        cluster: Option<&ClusterId>,
    ) -> Result<Tenant, StoreError> {
        let now = Utc::now();
        let sql = concat!(
            "INSERT INTO tenants (id, name, cluster_id, created_at, updated_at) SELECT $1, $2, $5, $3, $3 \
             WHERE NOT EXISTS (",
            namespaces::would_read_as_new!("$4", "$2"),
            ") RETURNING ",
            columns!()
        );
        let id = TenantId::generate();
        let prefix = namespaces::prefix(name);
        self.timed("tenants.create", async {
            on_pool!(self.write, |pool| {
                let insert = sqlx::query_as::<_, Tenant>(sql)
                    .bind(&id)
                    .bind(name)
                    .bind(now)
                    .bind(&prefix)
                    .bind(cluster);
                let refused = |e: sqlx::Error| {
                    if violated_unique(&e).is_some() {
                        name_taken(name)
                    } else if is_foreign_key_violation(&e) {
                        StoreError::NotFound(format!(
                            "cluster {} not found",
                            cluster.map_or("", ClusterId::as_str)
                        ))
                    } else {
                        e.into()
                    }
                };
                // The insert is guarded by the namespace rule (on PostgreSQL its lock comes
                // first) and commits with its outbox mark.
                let mut tx = pool.begin().await?;
                if self.is_postgres() {
                    sqlx::query(namespaces::LOCK_SQL).execute(&mut *tx).await?;
                }
                let created = insert.fetch_optional(&mut *tx).await.map_err(refused)?;
                if created.is_some() {
                    outbox::mark!(self, &mut *tx, outbox::MARK_TENANT, &id);
                }
                tx.commit().await?;
                self.outbox_written.notify_one();
                match created {
                    Some(tenant) => Ok(tenant),
                    None => {
                        let namespace: Option<String> =
                            sqlx::query_scalar(namespaces::would_read_as_new!("$1", "$2"))
                                .bind(&prefix)
                                .bind(name)
                                .fetch_optional(pool)
                                .await?;
                        Err(namespaces::misread(namespace.as_deref().unwrap_or(&prefix), name.as_str()))
                    }
                }
            })
        })
        .await
    }

    pub async fn get_tenant(&self, id: &TenantId) -> Result<Tenant, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM tenants WHERE id = $1");
        self.cached(
            |c| &c.tenants,
            id.as_str(),
            self.timed("tenants.get", async {
                on_pool!(self.read, |pool| sqlx::query_as::<_, Tenant>(sql)
                    .bind(id)
                    .fetch_optional(pool)
                    .await)?
                .ok_or_else(|| not_found(id))
            }),
        )
        .await
    }

    /// Newest first; `page.fetch_limit()` rows so the caller can tell whether more follow.
    pub async fn list_tenants(&self, page: &Page) -> Result<Vec<Tenant>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM tenants WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        );
        self.timed("tenants.list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, Tenant>(sql)
                .bind(page.after.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await)?)
        })
        .await
    }

    /// Renames a tenant. Every project's namespace `kubeop-<tenant>-<project>` must still fit a
    /// DNS label under the new name, checked in the same transaction as the update.
    pub async fn rename_tenant(&self, id: &TenantId, name: &Name) -> Result<(), StoreError> {
        let now = Utc::now();
        self.timed("tenants.rename", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                if self.is_postgres() {
                    sqlx::query(namespaces::LOCK_SQL).execute(&mut *tx).await?;
                }
                let projects: Vec<Name> =
                    sqlx::query_scalar("SELECT name FROM projects WHERE tenant_id = $1")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                for project in &projects {
                    Namespace::for_project(name, project)?;
                }
                let updated = sqlx::query("UPDATE tenants SET name = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| if violated_unique(&e).is_some() { name_taken(name) } else { e.into() })?;
                if updated.rows_affected() == 0 {
                    return Err(not_found(id));
                }
                let prefix = namespaces::prefix(name);
                namespaces::refuse_misread!(
                    &mut *tx,
                    project = None::<&str>,
                    tenant = Some(id),
                    prefix = Some(&prefix)
                );
                outbox::mark!(self, &mut *tx, outbox::MARK_TENANT, id);
                tx.commit().await?;
                self.outbox_written.notify_one();
                Ok(())
            })
        })
        .await?;
        self.changed(&[Change::Tenant(id.to_string())]).await;
        Ok(())
    }

    /// Deletes a tenant with its projects and apps.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<(), StoreError> {
        let sql = "DELETE FROM tenants WHERE id = $1";
        // The cascade removes its projects and apps too.
        let changes = [Change::Tenant(id.to_string()), Change::Cascade];
        let marks = [outbox::MARK_TENANT, outbox::MARK_PROJECTS_OF_TENANT, outbox::MARK_APPS_OF_TENANT];
        self.delete_by_id("tenants.delete", sql, id.as_str(), || not_found(id), &changes, &marks).await
    }
}
