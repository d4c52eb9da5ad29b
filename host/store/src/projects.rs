//! Projects: one Kubernetes namespace each, inside a tenant.

use chrono::Utc;

use crate::changes::Change;
use crate::namespaces;
use crate::outbox;
use crate::{Store, StoreError, is_foreign_key_violation, on_pool, violated_unique};
use kubeop_core::{Name, Namespace, Page, Project, ProjectId, TenantId};

macro_rules! columns {
    () => {
        "id, tenant_id, name, namespace, created_at"
    };
}

fn not_found(id: &ProjectId) -> StoreError {
    StoreError::NotFound(format!("project {id} not found"))
}

fn tenant_not_found(id: &TenantId) -> StoreError {
    StoreError::NotFound(format!("tenant {id} not found"))
}

fn conflict(error: sqlx::Error, name: &Name, namespace: Option<&Namespace>) -> StoreError {
    match violated_unique(&error).as_deref() {
        Some("projects_tenant_id_name_key") => {
            StoreError::Conflict(format!("a project named `{name}` already exists in this tenant"))
        }
        Some("projects_namespace_key") => StoreError::Conflict(format!(
            "namespace `{}` is already used by another project",
            namespace.map_or("", |n| n.as_str())
        )),
        _ => error.into(),
    }
}

impl Store {
    /// Creates a project in `tenant`; its namespace comes from the tenant's and project's names.
    pub async fn create_project(&self, tenant: &TenantId, name: &Name) -> Result<Project, StoreError> {
        let now = Utc::now();
        let sql = concat!(
            "INSERT INTO projects (id, tenant_id, name, namespace, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
            columns!()
        );
        self.timed("projects.create", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                let tenant_name: Name = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| tenant_not_found(tenant))?;
                let namespace = Namespace::for_project(&tenant_name, name)?;
                if self.is_postgres() {
                    sqlx::query(namespaces::LOCK_SQL).execute(&mut *tx).await?;
                }
                let id = ProjectId::generate();
                let project = sqlx::query_as::<_, Project>(sql)
                    .bind(&id)
                    .bind(tenant)
                    .bind(name)
                    .bind(&namespace)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            tenant_not_found(tenant)
                        } else {
                            conflict(e, name, Some(&namespace))
                        }
                    })?;
                namespaces::refuse_misread!(
                    &mut *tx,
                    project = Some(&id),
                    tenant = None::<&str>,
                    prefix = None::<&str>
                );
                outbox::mark!(self, &mut *tx, outbox::MARK_PROJECT, &id);
                tx.commit().await?;
                self.outbox_written.notify_one();
                Ok(project)
            })
        })
        .await
    }

    pub async fn get_project(&self, id: &ProjectId) -> Result<Project, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM projects WHERE id = $1");
        self.cached(
            |c| &c.projects,
            id.as_str(),
            self.timed("projects.get", async {
                on_pool!(self.read, |pool| sqlx::query_as::<_, Project>(sql)
                    .bind(id)
                    .fetch_optional(pool)
                    .await)?
                .ok_or_else(|| not_found(id))
            }),
        )
        .await
    }

    /// Newest first, optionally only one tenant's.
    pub async fn list_projects(
        &self,
        tenant: Option<&TenantId>,
        page: &Page,
    ) -> Result<Vec<Project>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM projects WHERE ($1 IS NULL OR tenant_id = $1) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        self.timed("projects.list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, Project>(sql)
                .bind(tenant)
                .bind(page.after.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await)?)
        })
        .await
    }

    /// Renames a project. Its namespace keeps the name it was created with, but the new name
    /// must still form a valid namespace with the tenant's name.
    pub async fn rename_project(&self, id: &ProjectId, name: &Name) -> Result<(), StoreError> {
        let now = Utc::now();
        self.timed("projects.rename", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                let tenant_name: Name = sqlx::query_scalar(
                    "SELECT t.name FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE p.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| not_found(id))?;
                Namespace::for_project(&tenant_name, name)?;
                sqlx::query("UPDATE projects SET name = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict(e, name, None))?;
                outbox::mark!(self, &mut *tx, outbox::MARK_PROJECT, id);
                tx.commit().await?;
                self.outbox_written.notify_one();
                Ok(())
            })
        })
        .await?;
        self.changed(&[Change::Project(id.to_string())]).await;
        Ok(())
    }

    /// Deletes a project with its apps.
    pub async fn delete_project(&self, id: &ProjectId) -> Result<(), StoreError> {
        let sql = "DELETE FROM projects WHERE id = $1";
        let changes = [Change::Project(id.to_string()), Change::Cascade];
        let marks = [outbox::MARK_PROJECT, outbox::MARK_APPS_OF_PROJECT];
        self.delete_by_id("projects.delete", sql, id.as_str(), || not_found(id), &changes, &marks).await
    }
}

impl Store {
    /// The project whose namespace this is, if any.
    pub async fn project_by_namespace(&self, namespace: &str) -> Result<Option<Project>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM projects WHERE namespace = $1");
        self.timed("projects.by_namespace", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, Project>(sql)
                .bind(namespace)
                .fetch_optional(pool)
                .await)?)
        })
        .await
    }
}
