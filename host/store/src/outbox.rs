//! The Kubernetes outbox: which tenants, projects, apps, cronjobs and platform policies a cluster
//! does not yet match. A change
//! writes its mark in the same transaction as the change itself, so a crash between the commit
//! and the cluster loses nothing; the reconciler (kubeop-kube) drains the marks, reading each
//! object's current row: present, it is applied; gone, it is deleted from the cluster. A mark is
//! only removed at the revision that was applied, so a change made meanwhile is applied too.

use std::collections::{HashMap, HashSet};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::cronjobs::{self, CronJobRow};
use crate::{Pool, Store, StoreError, on_pool};
use kubeop_core::{App, ClusterId, CronJob, Project, Tenant};

/// Which resource a mark is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Tenant,
    Project,
    App,
    CronJob,
    /// The platform policy, as the `kubeop-policy` ConfigMap; the object id is the cluster's
    /// (empty for the default cluster).
    Policy,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenant",
            ObjectKind::Project => "project",
            ObjectKind::App => "app",
            ObjectKind::CronJob => "cronjob",
            ObjectKind::Policy => "policy",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "tenant" => ObjectKind::Tenant,
            "project" => ObjectKind::Project,
            "app" => ObjectKind::App,
            "cronjob" => ObjectKind::CronJob,
            "policy" => ObjectKind::Policy,
            _ => return None,
        })
    }
}

/// One object a cluster is behind on.
#[derive(Debug, Clone)]
pub struct Mark {
    pub kind: ObjectKind,
    pub object_id: String,
    /// `None`: the default cluster.
    pub cluster: Option<ClusterId>,
    /// Projects: their namespace; apps and cronjobs: their project's; policies: `kubeop-system`.
    /// Known even once the row is gone.
    pub namespace: Option<String>,
    pub revision: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// What the database says an object should be, read past the cache.
#[derive(Debug, Clone)]
pub enum Desired {
    Tenant(Tenant),
    Project(Project),
    App(App),
    CronJob(Box<CronJob>),
    /// The platform policy in force belongs in the cluster (the reconciler knows which it is).
    Policy,
    /// Deleted: remove it from the cluster.
    Gone,
}

/// `INSERT … SELECT` of marks for the objects `$1` selects, at `$2` (Unix ms), only for tenants
/// with a cluster (`$3`: whether tenants without one have the default cluster). A mark already
/// there gets a new revision and is due at once.
macro_rules! mark_sql {
    ($kind:literal, $id:literal, $namespace:literal, $from:literal, $where:literal) => {
        concat!(
            "INSERT INTO kube_outbox (kind, object_id, cluster_id, namespace, revision, attempts, next_attempt_ms) \
             SELECT '",
            $kind,
            "', ",
            $id,
            ", t.cluster_id, ",
            $namespace,
            ", 1, 0, $2 FROM ",
            $from,
            " WHERE ",
            $where,
            " AND (t.cluster_id IS NOT NULL OR $3)",
            on_conflict!()
        )
    };
}

/// A mark already there gets a new revision and is due at once.
macro_rules! on_conflict {
    () => {
        " ON CONFLICT (kind, object_id) DO UPDATE SET revision = kube_outbox.revision + 1, \
         attempts = 0, next_attempt_ms = excluded.next_attempt_ms, last_error = NULL"
    };
}

pub(crate) const MARK_TENANT: &str = mark_sql!("tenant", "t.id", "NULL", "tenants t", "t.id = $1");
pub(crate) const MARK_PROJECT: &str = mark_sql!(
    "project",
    "p.id",
    "p.namespace",
    "projects p JOIN tenants t ON t.id = p.tenant_id",
    "p.id = $1"
);
pub(crate) const MARK_PROJECTS_OF_TENANT: &str = mark_sql!(
    "project",
    "p.id",
    "p.namespace",
    "projects p JOIN tenants t ON t.id = p.tenant_id",
    "p.tenant_id = $1"
);
pub(crate) const MARK_APP: &str = mark_sql!(
    "app",
    "a.id",
    "p.namespace",
    "apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id",
    "a.id = $1"
);
pub(crate) const MARK_APPS_OF_PROJECT: &str = mark_sql!(
    "app",
    "a.id",
    "p.namespace",
    "apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id",
    "a.project_id = $1"
);
pub(crate) const MARK_APPS_OF_TENANT: &str = mark_sql!(
    "app",
    "a.id",
    "p.namespace",
    "apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id",
    "p.tenant_id = $1"
);

pub(crate) const MARK_CRONJOB: &str = mark_sql!(
    "cronjob",
    "c.id",
    "p.namespace",
    "cronjobs c JOIN projects p ON p.id = c.project_id JOIN tenants t ON t.id = p.tenant_id",
    "c.id = $1"
);

/// The policy for every registered cluster (`$2` NULL) or one (`$2`), due at `$1`.
pub(crate) const MARK_POLICY_REGISTERED: &str = concat!(
    "INSERT INTO kube_outbox (kind, object_id, cluster_id, namespace, revision, attempts, next_attempt_ms) \
     SELECT 'policy', c.id, c.id, 'kubeop-system', 1, 0, $1 FROM clusters c WHERE ($2 IS NULL OR c.id = $2)",
    on_conflict!()
);
/// The policy for the default cluster, if there is one (`$2`), due at `$1`.
pub(crate) const MARK_POLICY_DEFAULT: &str = concat!(
    "INSERT INTO kube_outbox (kind, object_id, cluster_id, namespace, revision, attempts, next_attempt_ms) \
     SELECT 'policy', '', NULL, 'kubeop-system', 1, 0, $1 WHERE $2",
    on_conflict!()
);

/// Writes marks with `$sql` for `$id` on `$executor` (the change's transaction).
macro_rules! mark {
    ($store:expr, $executor:expr, $sql:expr, $id:expr) => {
        sqlx::query($sql)
            .bind($id)
            .bind($crate::outbox::now_ms())
            .bind($store.default_cluster)
            .execute($executor)
            .await?
    };
}
pub(crate) use mark;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `SELECT` of the rows whose ids are in the JSON array `$1`, per table and engine.
macro_rules! desired_sql {
    (@in pg) => { "SELECT jsonb_array_elements_text($1::jsonb)" };
    (@in sqlite) => { "SELECT value FROM json_each($1)" };
    (tenants, $engine:ident) => {
        concat!("SELECT id, name, cluster_id, created_at FROM tenants WHERE id IN (", desired_sql!(@in $engine), ")")
    };
    (projects, $engine:ident) => {
        concat!(
            "SELECT id, tenant_id, name, namespace, created_at FROM projects WHERE id IN (",
            desired_sql!(@in $engine),
            ")"
        )
    };
    (cronjobs, $engine:ident) => {
        concat!(cronjobs::select!(), " WHERE c.id IN (", desired_sql!(@in $engine), ")")
    };
    (apps, $engine:ident) => {
        concat!(
            "SELECT a.id, a.project_id, p.tenant_id, a.name, a.image, a.host, a.created_at \
             FROM apps a JOIN projects p ON p.id = a.project_id WHERE a.id IN (",
            desired_sql!(@in $engine),
            ")"
        )
    };
}

macro_rules! mark_columns {
    () => {
        "kind, object_id, cluster_id, namespace, revision, attempts, last_error"
    };
}

type MarkRow = (String, String, Option<ClusterId>, Option<String>, i64, i32, Option<String>);

fn read_mark((kind, object_id, cluster, namespace, revision, attempts, last_error): MarkRow) -> Option<Mark> {
    Some(Mark {
        kind: ObjectKind::parse(&kind)?,
        object_id,
        cluster,
        namespace,
        revision,
        attempts,
        last_error,
    })
}

impl Store {
    /// Completes when a change has written an outbox mark since the last call (or now, if one
    /// did before anyone waited).
    pub async fn outbox_written(&self) {
        self.outbox_written.notified().await
    }

    /// The clusters with marks due by `now_ms` (`None`: the default cluster).
    pub async fn clusters_with_due_marks(&self, now_ms: i64) -> Result<Vec<Option<ClusterId>>, StoreError> {
        let sql = "SELECT DISTINCT cluster_id FROM kube_outbox WHERE next_attempt_ms <= $1";
        self.timed("outbox.clusters", async {
            Ok(on_pool!(self.read, |pool| sqlx::query_scalar::<_, Option<ClusterId>>(sql)
                .bind(now_ms)
                .fetch_all(pool)
                .await)?)
        })
        .await
    }

    /// Up to `limit` marks of one cluster due by `now_ms`: tenants and policies first, then
    /// projects (whose namespaces apps and cronjobs need), then the rest; oldest first within a
    /// kind.
    pub async fn due_marks(
        &self,
        cluster: Option<&ClusterId>,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<Mark>, StoreError> {
        let sql = concat!(
            "SELECT ",
            mark_columns!(),
            " FROM kube_outbox WHERE COALESCE(cluster_id, '') = $1 AND next_attempt_ms <= $2 \
             ORDER BY CASE kind WHEN 'tenant' THEN 0 WHEN 'policy' THEN 0 WHEN 'project' THEN 1 ELSE 2 END, next_attempt_ms, object_id \
             LIMIT $3"
        );
        let cluster = cluster.map_or("", ClusterId::as_str);
        self.timed("outbox.due", async {
            let rows: Vec<MarkRow> = on_pool!(self.read, |pool| sqlx::query_as(sql)
                .bind(cluster)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await)?;
            Ok(rows.into_iter().filter_map(read_mark).collect())
        })
        .await
    }

    /// The pending mark of one object, if any: the cluster is behind on it.
    pub async fn pending_mark(&self, kind: ObjectKind, object_id: &str) -> Result<Option<Mark>, StoreError> {
        let sql = concat!("SELECT ", mark_columns!(), " FROM kube_outbox WHERE kind = $1 AND object_id = $2");
        self.timed("outbox.pending", async {
            let row: Option<MarkRow> = on_pool!(self.read, |pool| sqlx::query_as(sql)
                .bind(kind.as_str())
                .bind(object_id)
                .fetch_optional(pool)
                .await)?;
            Ok(row.and_then(read_mark))
        })
        .await
    }

    /// The cluster matches these marks' revisions: forget them, unless a newer change bumped
    /// one. One transaction for the lot, so the reconciler takes the writer (SQLite has one)
    /// once per batch rather than once per object.
    pub async fn complete_marks(&self, marks: &[&Mark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let sql = "DELETE FROM kube_outbox WHERE kind = $1 AND object_id = $2 AND revision = $3";
        self.timed("outbox.complete", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                for mark in marks {
                    sqlx::query(sql)
                        .bind(mark.kind.as_str())
                        .bind(&mark.object_id)
                        .bind(mark.revision)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    /// The apply failed: try again at `retry_at_ms`, remembering why.
    pub async fn fail_mark(&self, mark: &Mark, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        let sql = "UPDATE kube_outbox SET attempts = attempts + 1, next_attempt_ms = $4, last_error = $5 \
                   WHERE kind = $1 AND object_id = $2 AND revision = $3";
        self.timed("outbox.fail", async {
            on_pool!(self.write, |pool| sqlx::query(sql)
                .bind(mark.kind.as_str())
                .bind(&mark.object_id)
                .bind(mark.revision)
                .bind(retry_at_ms)
                .bind(error)
                .execute(pool)
                .await
                .map(drop))?;
            Ok(())
        })
        .await
    }

    /// The objects of one kind as the database has them now (absent: `Gone`), in one query,
    /// never from the cache: a cached copy could be older than the change a mark is for. (The
    /// read pool sees every commit: on SQLite it is the same file.)
    pub async fn desired(
        &self,
        kind: ObjectKind,
        ids: &[&str],
    ) -> Result<HashMap<String, Desired>, StoreError> {
        if kind == ObjectKind::Policy {
            return Ok(ids.iter().map(|id| ((*id).to_owned(), Desired::Policy)).collect());
        }
        let list = serde_json::to_string(ids).expect("strings serialise");
        let sql = match (kind, self.is_postgres()) {
            (ObjectKind::Tenant, true) => desired_sql!(tenants, pg),
            (ObjectKind::Tenant, false) => desired_sql!(tenants, sqlite),
            (ObjectKind::Project, true) => desired_sql!(projects, pg),
            (ObjectKind::Project, false) => desired_sql!(projects, sqlite),
            (ObjectKind::App, true) => desired_sql!(apps, pg),
            (ObjectKind::App, false) => desired_sql!(apps, sqlite),
            (ObjectKind::CronJob, true) => desired_sql!(cronjobs, pg),
            (ObjectKind::CronJob, false) => desired_sql!(cronjobs, sqlite),
            (ObjectKind::Policy, _) => unreachable!("answered above"),
        };
        let found: Vec<(String, Desired)> = self
            .timed("outbox.desired", async {
                Ok(match kind {
                    ObjectKind::Tenant => on_pool!(self.read, |pool| sqlx::query_as::<_, Tenant>(sql)
                        .bind(&list)
                        .fetch_all(pool)
                        .await)?
                    .into_iter()
                    .map(|t| (t.id.to_string(), Desired::Tenant(t)))
                    .collect(),
                    ObjectKind::Project => on_pool!(self.read, |pool| sqlx::query_as::<_, Project>(sql)
                        .bind(&list)
                        .fetch_all(pool)
                        .await)?
                    .into_iter()
                    .map(|p| (p.id.to_string(), Desired::Project(p)))
                    .collect(),
                    ObjectKind::App => on_pool!(self.read, |pool| sqlx::query_as::<_, App>(sql)
                        .bind(&list)
                        .fetch_all(pool)
                        .await)?
                    .into_iter()
                    .map(|a| (a.id.to_string(), Desired::App(a)))
                    .collect(),
                    ObjectKind::CronJob => on_pool!(self.read, |pool| sqlx::query_as::<_, CronJobRow>(sql)
                        .bind(&list)
                        .fetch_all(pool)
                        .await)?
                    .into_iter()
                    .map(|row| row.into_cronjob().map(|c| (c.id.to_string(), Desired::CronJob(Box::new(c)))))
                    .collect::<Result<_, _>>()?,
                    ObjectKind::Policy => unreachable!("answered above"),
                })
            })
            .await?;
        Ok(found.into_iter().collect())
    }

    /// Takes the lease on reconciling `cluster` for this process, or says another replica has
    /// it. PostgreSQL: a session advisory lock on a connection of its own, held until the
    /// process exits or the connection breaks, so a replica that dies frees its clusters at once
    /// and no timing is involved. SQLite serves one process, which needs no lease.
    pub async fn lease_cluster(
        &self,
        leases: &mut Leases,
        cluster: Option<&ClusterId>,
    ) -> Result<Lease, StoreError> {
        let key = format!("kubeop-reconcile:{}", cluster.map_or("", ClusterId::as_str));
        let Pool::Postgres(pool) = &self.write else {
            return Ok(if leases.held.insert(key) { Lease::Taken } else { Lease::Held });
        };
        if leases.held.contains(&key) {
            let alive = match leases.connection.as_mut() {
                Some(connection) => connection.ping().await.is_ok(),
                None => false,
            };
            if alive {
                return Ok(Lease::Held);
            }
            // The session is gone, and its locks with it: start over.
            leases.held.clear();
            leases.connection = None;
        }
        if leases.connection.is_none() {
            leases.connection = Some(pool.acquire().await?.detach());
        }
        let connection = leases.connection.as_mut().expect("set above");
        // Keyed by schema too: installations (and tests) sharing a database have their own leases.
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || ':' || $1, 0))",
        )
        .bind(&key)
        .fetch_one(&mut *connection)
        .await
        .inspect_err(|_| leases.connection = None)?;
        if !taken {
            return Ok(Lease::Elsewhere);
        }
        leases.held.insert(key);
        Ok(Lease::Taken)
    }

    /// Marks every tenant, project, app and cronjob of one cluster (`None`: the default
    /// cluster's tenants) and its policy, so a reconciler taking the cluster over re-applies everything: drift, a default
    /// cluster configured after tenants existed, and anything a lost database write left out.
    pub async fn mark_cluster_for_resync(&self, cluster: Option<&ClusterId>) -> Result<(), StoreError> {
        let cluster = cluster.map_or("", ClusterId::as_str);
        self.timed("outbox.resync", async {
            on_pool!(self.write, |pool| {
                let mut tx = pool.begin().await?;
                for sql in [RESYNC_TENANTS, RESYNC_PROJECTS, RESYNC_APPS, RESYNC_CRONJOBS] {
                    sqlx::query(sql)
                        .bind(cluster)
                        .bind(now_ms())
                        .bind(self.default_cluster)
                        .execute(&mut *tx)
                        .await?;
                }
                if cluster.is_empty() {
                    sqlx::query(MARK_POLICY_DEFAULT)
                        .bind(now_ms())
                        .bind(self.default_cluster)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query(MARK_POLICY_REGISTERED)
                        .bind(now_ms())
                        .bind(cluster)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }
}

/// What [`Store::lease_cluster`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This process just took the cluster over.
    Taken,
    /// This process already had it.
    Held,
    /// Another replica reconciles it.
    Elsewhere,
}

/// The reconcile leases this process holds (see [`Store::lease_cluster`]).
#[derive(Default)]
pub struct Leases {
    connection: Option<PgConnection>,
    held: HashSet<String>,
}

const RESYNC_TENANTS: &str =
    mark_sql!("tenant", "t.id", "NULL", "tenants t", "COALESCE(t.cluster_id, '') = $1");
const RESYNC_PROJECTS: &str = mark_sql!(
    "project",
    "p.id",
    "p.namespace",
    "projects p JOIN tenants t ON t.id = p.tenant_id",
    "COALESCE(t.cluster_id, '') = $1"
);
const RESYNC_APPS: &str = mark_sql!(
    "app",
    "a.id",
    "p.namespace",
    "apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id",
    "COALESCE(t.cluster_id, '') = $1"
);
const RESYNC_CRONJOBS: &str = mark_sql!(
    "cronjob",
    "c.id",
    "p.namespace",
    "cronjobs c JOIN projects p ON p.id = c.project_id JOIN tenants t ON t.id = p.tenant_id",
    "COALESCE(t.cluster_id, '') = $1"
);
