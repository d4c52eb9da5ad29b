//! Persistence: one `Store` over two engines. SQLite (an embedded file, no setup) and PostgreSQL
//! (shared by replicas) run the same SQL text: `$n` placeholders and `RETURNING` work in both,
//! and [`on_pool!`] expands each query once per engine so each runs on its native driver.
//! Queries return kubeop's entities (`kubeop_core`) or plain rows; nothing here knows HTTP or
//! WebAssembly. Secrets at rest are sealed with [`kms::Kms`].

pub mod apps;
mod cache;
pub mod changes;
pub mod clusters;
pub mod cronjobs;
pub mod kms;
mod migrations;
mod namespaces;
pub mod outbox;
pub mod plugins;
pub mod policy;
pub mod projects;
pub mod rates;
pub mod tenants;
pub mod usage;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::HistogramVec;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use cache::ReadCache;
use kubeop_core::Invalid;

#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the engine's own pool type. The body is written once and
/// compiled once per engine.
macro_rules! on_pool {
    ($pool_value:expr, |$pool:ident| $body:expr) => {
        match &$pool_value {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Clone)]
pub struct Store {
    /// Reads. On PostgreSQL the same pool as `write`.
    read: Pool,
    /// Writes. SQLite allows one writer at a time: a single-connection pool queues writers in
    /// order, where many connections would contend for the file lock and back off in sleeps.
    write: Pool,
    query_seconds: HistogramVec,
    cache: Option<Arc<ReadCache>>,
    /// Whether tenants without a cluster of their own have the default one: only then do their
    /// changes leave an outbox mark.
    default_cluster: bool,
    /// Woken after every commit that wrote an outbox mark, so the reconciler starts at once.
    outbox_written: Arc<tokio::sync::Notify>,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long a tenant, project or app read by id may be served from memory; zero: never.
    pub read_cache_ttl: Duration,
    pub read_cache_capacity: usize,
    /// A default cluster is configured (`kube.default` other than `none`).
    pub default_cluster: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No connection within the acquire timeout, or the server is unreachable.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(error)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Names the unique constraint an error violated, in PostgreSQL's naming
/// (`<table>_<columns>_key`) for both engines.
pub(crate) fn violated_unique(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = error else { return None };
    if !db.is_unique_violation() {
        return None;
    }
    if let Some(name) = db.constraint() {
        return Some(name.to_owned());
    }
    // SQLite: "UNIQUE constraint failed: projects.tenant_id, projects.name".
    let columns = db.message().strip_prefix("UNIQUE constraint failed: ")?;
    let mut table = "";
    let mut names = Vec::new();
    for qualified in columns.split(", ") {
        let (t, column) = qualified.split_once('.')?;
        table = t;
        names.push(column);
    }
    Some(format!("{table}_{}_key", names.join("_")))
}

pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

impl Store {
    /// Opens the database at `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(
        url: &str,
        options: &StoreOptions,
        query_seconds: HistogramVec,
    ) -> Result<Self, StoreError> {
        let (max_connections, acquire_timeout) = (options.max_connections, options.acquire_timeout);
        let (read, write) = if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            if let Some(dir) = connect.get_filename().parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
            }
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_with(connect.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(connect.read_only(true))
                .await?;
            (Pool::Sqlite(read), Pool::Sqlite(write))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(connect)
                .await?;
            (Pool::Postgres(pool.clone()), Pool::Postgres(pool))
        } else {
            // The URL itself is not repeated: it may hold a password.
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            return Err(StoreError::Invalid(Invalid(format!(
                "database URL must start with sqlite: or postgres:, not `{scheme}:`"
            ))));
        };
        let cache = ReadCache::new(options.read_cache_ttl, options.read_cache_capacity).map(Arc::new);
        Ok(Self {
            read,
            write,
            query_seconds,
            cache,
            default_cluster: options.default_cluster,
            outbox_written: Default::default(),
        })
    }

    /// Applies every migration not yet applied. Safe to run from several replicas at once.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.write {
            Pool::Sqlite(pool) => migrations::SQLITE.run(pool).await,
            Pool::Postgres(pool) => migrations::POSTGRES.run(pool).await,
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self.write, Pool::Postgres(_))
    }

    pub fn engine(&self) -> &'static str {
        match self.write {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", async {
            on_pool!(self.read, |pool| sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
            Ok(())
        })
        .await
    }

    pub async fn close(&self) {
        on_pool!(self.read, |pool| pool.close().await);
        on_pool!(self.write, |pool| pool.close().await);
    }

    /// Deletes one row by id (cascading as the schema says) after writing the outbox marks
    /// `marks` select for it, in one transaction; tells the replicas what changed, and answers
    /// `not_found` when there was no such row.
    pub(crate) async fn delete_by_id(
        &self,
        operation: &'static str,
        sql: &'static str,
        id: &str,
        not_found: impl FnOnce() -> StoreError,
        changes: &[changes::Change],
        marks: &[&'static str],
    ) -> Result<(), StoreError> {
        let deleted = self
            .timed(operation, async {
                on_pool!(self.write, |pool| {
                    let mut tx = pool.begin().await?;
                    for mark in marks {
                        outbox::mark!(self, &mut *tx, *mark, id);
                    }
                    let deleted = sqlx::query(sql).bind(id).execute(&mut *tx).await?.rows_affected();
                    tx.commit().await?;
                    self.outbox_written.notify_one();
                    Ok(deleted)
                })
            })
            .await?;
        if deleted == 0 {
            return Err(not_found());
        }
        self.changed(changes).await;
        Ok(())
    }

    /// A read by id, served from the cache when it holds a fresh copy.
    async fn cached<V: Clone>(
        &self,
        entries: impl Fn(&ReadCache) -> &cache::Entries<V>,
        id: &str,
        read: impl Future<Output = Result<V, StoreError>>,
    ) -> Result<V, StoreError> {
        let Some(cache) = &self.cache else { return read.await };
        if let Some(hit) = cache.get(entries(cache), id) {
            return Ok(hit);
        }
        let generation = cache.generation();
        let value = read.await?;
        cache.store(entries(cache), generation, id, value.clone());
        Ok(value)
    }

    /// Forgets cached copies after a change: one entry, or every entry of a kind.
    fn invalidate<V>(&self, entries: impl Fn(&ReadCache) -> &cache::Entries<V>, id: Option<&str>) {
        if let Some(cache) = &self.cache {
            match id {
                Some(id) => cache.forget(entries(cache), id),
                None => cache.forget_all(entries(cache)),
            }
        }
    }

    /// Records how long one store operation took, by operation name.
    pub(crate) async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = work.await;
        self.query_seconds.with_label_values(&[operation]).observe(started.elapsed().as_secs_f64());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_unique_violations_are_named_like_postgres_constraints() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let histogram = HistogramVec::new(prometheus::HistogramOpts::new("t", "t"), &["operation"]).unwrap();
        let options = StoreOptions {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
            read_cache_ttl: Duration::ZERO,
            read_cache_capacity: 0,
            default_cluster: false,
        };
        let store = Store::connect(&url, &options, histogram).await.unwrap();
        store.migrate().await.unwrap();
        let Pool::Sqlite(pool) = &store.write else { unreachable!() };
        let insert = "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, 'a', '', '')";
        sqlx::query(insert).bind("t_1").execute(pool).await.unwrap();
        let error = sqlx::query(insert).bind("t_2").execute(pool).await.unwrap_err();
        assert_eq!(violated_unique(&error).as_deref(), Some("tenants_name_key"));
    }
}
