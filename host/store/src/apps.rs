//! Apps: a workload in a project, with its image and optional public host.

use chrono::Utc;

use crate::changes::Change;
use crate::outbox;
use crate::{Store, StoreError, is_foreign_key_violation, on_pool, violated_unique};
use kubeop_core::{App, AppId, Hostname, ImageRef, Name, Page, ProjectId};

/// What an update changes; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct AppChanges {
    pub name: Option<Name>,
    pub image: Option<ImageRef>,
    pub host: Option<Hostname>,
}

macro_rules! select {
    () => {
        "SELECT a.id, a.project_id, p.tenant_id, a.name, a.image, a.host, a.created_at \
         FROM apps a JOIN projects p ON p.id = a.project_id"
    };
}

fn not_found(id: &AppId) -> StoreError {
    StoreError::NotFound(format!("app {id} not found"))
}

fn conflict(error: sqlx::Error, name: Option<&Name>, host: Option<&Hostname>) -> StoreError {
    match violated_unique(&error).as_deref() {
        Some("apps_project_id_name_key") => StoreError::Conflict(format!(
            "an app named `{}` already exists in this project",
            name.map_or("", |n| n.as_str())
        )),
        Some("apps_host_key") => StoreError::Conflict(format!(
            "host `{}` is already used by another app",
            host.map_or("", |h| h.as_str())
        )),
        _ => error.into(),
    }
}

impl Store {
    pub async fn create_app(
        &self,
        project: &ProjectId,
        name: &Name,
        image: &ImageRef,
        host: Option<&Hostname>,
    ) -> Result<App, StoreError> {
        let id = AppId::generate();
        let now = Utc::now();
        let select = concat!(select!(), " WHERE a.id = $1");
        self.timed("apps.create", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO apps (id, project_id, name, image, host, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&id)
                .bind(project)
                .bind(name)
                .bind(image.as_written())
                .bind(host)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::NotFound(format!("project {project} not found"))
                    } else {
                        conflict(e, Some(name), host)
                    }
                })?;
                let app = sqlx::query_as::<_, App>(select).bind(&id).fetch_one(&mut *tx).await?;
                outbox::mark!(self, &mut *tx, outbox::MARK_APP, &id);
                tx.commit().await?;
                self.outbox_written.notify_one();
                Ok(app)
            })
        })
        .await
    }

    pub async fn get_app(&self, id: &AppId) -> Result<App, StoreError> {
        let sql = concat!(select!(), " WHERE a.id = $1");
        self.cached(
            |c| &c.apps,
            id.as_str(),
            self.timed("apps.get", async {
                on_pool!(self.read, |pool| sqlx::query_as::<_, App>(sql).bind(id).fetch_optional(pool).await)?
                    .ok_or_else(|| not_found(id))
            }),
        )
        .await
    }

    /// Newest first, optionally only one project's.
    pub async fn list_apps(&self, project: Option<&ProjectId>, page: &Page) -> Result<Vec<App>, StoreError> {
        let sql = concat!(
            select!(),
            " WHERE ($1 IS NULL OR a.project_id = $1) AND ($2 IS NULL OR a.id < $2) ORDER BY a.id DESC LIMIT $3"
        );
        self.timed("apps.list", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, App>(sql)
                .bind(project)
                .bind(page.after.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await)?)
        })
        .await
    }

    pub async fn update_app(&self, id: &AppId, changes: &AppChanges) -> Result<(), StoreError> {
        let now = Utc::now();
        self.timed("apps.update", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE apps SET name = COALESCE($2, name), image = COALESCE($3, image), \
                     host = COALESCE($4, host), updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(changes.name.as_ref())
                .bind(changes.image.as_ref().map(ImageRef::as_written))
                .bind(changes.host.as_ref())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, changes.name.as_ref(), changes.host.as_ref()))?;
                if updated.rows_affected() == 0 {
                    return Err(not_found(id));
                }
                outbox::mark!(self, &mut *tx, outbox::MARK_APP, id);
                tx.commit().await?;
                self.outbox_written.notify_one();
                Ok(())
            })
        })
        .await?;
        self.changed(&[Change::App(id.to_string())]).await;
        Ok(())
    }

    pub async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        let sql = "DELETE FROM apps WHERE id = $1";
        let changes = [Change::App(id.to_string())];
        self.delete_by_id("apps.delete", sql, id.as_str(), || not_found(id), &changes, &[outbox::MARK_APP])
            .await
    }

    /// Every app's public host with its tenant, namespace and id (what the manager knows of the
    /// hosts its clusters serve), for `POST /v1/admission/review`.
    pub async fn served_hosts(&self) -> Result<Vec<ServedHost>, StoreError> {
        self.timed("apps.hosts", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, ServedHost>(
                "SELECT a.host, p.tenant_id, p.namespace, a.id AS app_id FROM apps a \
                 JOIN projects p ON p.id = a.project_id WHERE a.host IS NOT NULL ORDER BY a.host"
            )
            .fetch_all(pool)
            .await)?)
        })
        .await
    }
}

/// An app's public host.
#[derive(Debug, Clone)]
pub struct ServedHost {
    pub host: String,
    pub tenant_id: String,
    pub namespace: String,
    pub app_id: String,
}

kubeop_core::from_row!(ServedHost { host, tenant_id, namespace, app_id });
