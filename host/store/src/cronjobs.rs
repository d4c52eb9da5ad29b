//! CronJobs: a scheduled workload in a project, identified in the API by project and name.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::outbox;
use crate::{Store, StoreError, is_foreign_key_violation, on_pool, violated_unique};
use kubeop_core::{ConcurrencyPolicy, CronJob, CronJobId, CronSchedule, Name, Page, ProjectId, TenantId};

/// A CronJob to create; every field validated by the caller.
#[derive(Debug, Clone)]
pub struct NewCronJob {
    pub project_id: ProjectId,
    pub name: Name,
    pub schedule: CronSchedule,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub suspend: bool,
    pub concurrency_policy: ConcurrencyPolicy,
    pub successful_jobs_history_limit: i32,
    pub failed_jobs_history_limit: i32,
    pub starting_deadline_seconds: Option<i64>,
}

macro_rules! select {
    () => {
        "SELECT c.id, c.project_id, p.tenant_id, c.name, c.schedule, c.image, c.command, c.args, c.env, \
         c.suspend, c.concurrency_policy, c.successful_jobs_history_limit, c.failed_jobs_history_limit, \
         c.starting_deadline_seconds, c.created_at FROM cronjobs c JOIN projects p ON p.id = c.project_id"
    };
}
pub(crate) use select;

/// A row as stored: lists and the environment are JSON text.
pub(crate) struct CronJobRow {
    id: CronJobId,
    project_id: ProjectId,
    tenant_id: TenantId,
    name: Name,
    schedule: String,
    image: String,
    command: String,
    args: String,
    env: String,
    suspend: bool,
    concurrency_policy: String,
    successful_jobs_history_limit: i32,
    failed_jobs_history_limit: i32,
    starting_deadline_seconds: Option<i64>,
    created_at: DateTime<Utc>,
}

kubeop_core::from_row!(CronJobRow {
    id,
    project_id,
    tenant_id,
    name,
    schedule,
    image,
    command,
    args,
    env,
    suspend,
    concurrency_policy,
    successful_jobs_history_limit,
    failed_jobs_history_limit,
    starting_deadline_seconds,
    created_at
});

impl CronJobRow {
    /// Rows were validated when written; one that no longer reads is a server error.
    pub(crate) fn into_cronjob(self) -> Result<CronJob, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("cronjobs.{what} of {} is invalid", self.id).into(),
            ))
        };
        Ok(CronJob {
            schedule: CronSchedule::parse(&self.schedule).map_err(|_| corrupt("schedule"))?,
            command: serde_json::from_str(&self.command).map_err(|_| corrupt("command"))?,
            args: serde_json::from_str(&self.args).map_err(|_| corrupt("args"))?,
            env: serde_json::from_str(&self.env).map_err(|_| corrupt("env"))?,
            concurrency_policy: ConcurrencyPolicy::parse(&self.concurrency_policy)
                .map_err(|_| corrupt("concurrency_policy"))?,
            id: self.id,
            project_id: self.project_id,
            tenant_id: self.tenant_id,
            name: self.name,
            image: self.image,
            suspend: self.suspend,
            successful_jobs_history_limit: self.successful_jobs_history_limit,
            failed_jobs_history_limit: self.failed_jobs_history_limit,
            starting_deadline_seconds: self.starting_deadline_seconds,
            created_at: self.created_at,
        })
    }
}

fn not_found(project: &ProjectId, name: &str) -> StoreError {
    StoreError::NotFound(format!("cronjob `{name}` not found in project {project}"))
}

impl Store {
    pub async fn create_cronjob(&self, new: &NewCronJob) -> Result<CronJob, StoreError> {
        let id = CronJobId::generate();
        let now = Utc::now();
        let command = serde_json::to_string(&new.command).expect("strings serialise");
        let args = serde_json::to_string(&new.args).expect("strings serialise");
        let env = serde_json::to_string(&new.env).expect("strings serialise");
        let select = concat!(select!(), " WHERE c.id = $1");
        let row = self
            .timed("cronjobs.create", async {
                on_pool!(self.write, |pool| {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "INSERT INTO cronjobs (id, project_id, name, schedule, image, command, args, env, suspend, \
                         concurrency_policy, successful_jobs_history_limit, failed_jobs_history_limit, \
                         starting_deadline_seconds, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    )
                    .bind(&id)
                    .bind(&new.project_id)
                    .bind(&new.name)
                    .bind(new.schedule.as_str())
                    .bind(&new.image)
                    .bind(&command)
                    .bind(&args)
                    .bind(&env)
                    .bind(new.suspend)
                    .bind(new.concurrency_policy.as_str())
                    .bind(new.successful_jobs_history_limit)
                    .bind(new.failed_jobs_history_limit)
                    .bind(new.starting_deadline_seconds)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::NotFound(format!("project {} not found", new.project_id))
                        } else if violated_unique(&e).as_deref() == Some("cronjobs_project_id_name_key") {
                            StoreError::Conflict(format!(
                                "a cronjob named `{}` already exists in this project",
                                new.name
                            ))
                        } else {
                            e.into()
                        }
                    })?;
                    let row = sqlx::query_as::<_, CronJobRow>(select).bind(&id).fetch_one(&mut *tx).await?;
                    outbox::mark!(self, &mut *tx, outbox::MARK_CRONJOB, &id);
                    tx.commit().await?;
                    self.outbox_written.notify_one();
                    Ok(row)
                })
            })
            .await?;
        row.into_cronjob()
    }

    pub async fn get_cronjob(&self, project: &ProjectId, name: &str) -> Result<CronJob, StoreError> {
        let sql = concat!(select!(), " WHERE c.project_id = $1 AND c.name = $2");
        let row = self
            .timed("cronjobs.get", async {
                on_pool!(self.read, |pool| sqlx::query_as::<_, CronJobRow>(sql)
                    .bind(project)
                    .bind(name)
                    .fetch_optional(pool)
                    .await)?
                .ok_or_else(|| not_found(project, name))
            })
            .await?;
        row.into_cronjob()
    }

    /// Newest first, optionally only one project's.
    pub async fn list_cronjobs(
        &self,
        project: Option<&ProjectId>,
        page: &Page,
    ) -> Result<Vec<CronJob>, StoreError> {
        let sql = concat!(
            select!(),
            " WHERE ($1 IS NULL OR c.project_id = $1) AND ($2 IS NULL OR c.id < $2) ORDER BY c.id DESC LIMIT $3"
        );
        let rows = self
            .timed("cronjobs.list", async {
                Ok(on_pool!(self.read, |pool| sqlx::query_as::<_, CronJobRow>(sql)
                    .bind(project)
                    .bind(page.after.as_deref())
                    .bind(page.fetch_limit())
                    .fetch_all(pool)
                    .await)?)
            })
            .await?;
        rows.into_iter().map(CronJobRow::into_cronjob).collect()
    }

    /// Deletes a CronJob; the reconciler removes it (and, as Kubernetes does, its Jobs) from
    /// the cluster.
    pub async fn delete_cronjob(&self, project: &ProjectId, name: &str) -> Result<(), StoreError> {
        let id: Option<CronJobId> = self
            .timed("cronjobs.find", async {
                Ok(on_pool!(self.read, |pool| sqlx::query_scalar(
                    "SELECT id FROM cronjobs WHERE project_id = $1 AND name = $2"
                )
                .bind(project)
                .bind(name)
                .fetch_optional(pool)
                .await)?)
            })
            .await?;
        let id = id.ok_or_else(|| not_found(project, name))?;
        let sql = "DELETE FROM cronjobs WHERE id = $1";
        self.delete_by_id(
            "cronjobs.delete",
            sql,
            id.as_str(),
            || not_found(project, name),
            &[],
            &[outbox::MARK_CRONJOB],
        )
        .await
    }
}
