//! Managers for the benchmarks: started in-process, each on a runtime of its own (as it would be
//! in its own process), on SQLite or on a fresh PostgreSQL schema.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kubeop_api::auth::{Authenticator, Caller};
use kubeop_config::{Config, KmsKey, ListenAddr, SigningKey};
use sqlx::Connection;

const KEY: [u8; 32] = *b"kubeop-benchmark-signing-key-32b";

/// A database for one measurement: an SQLite file or a PostgreSQL schema, dropped afterwards.
pub struct Database {
    pub url: String,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Database {
    pub fn create(engine: &str, postgres_url: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        if engine == "sqlite" {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            return Ok(Self { url, _dir: dir, postgres: None });
        }
        let schema = format!("kbench_{}", ulid::Ulid::generate().to_string().to_lowercase());
        block_on(execute(postgres_url, &format!("CREATE SCHEMA \"{schema}\"")))?;
        let separator = if postgres_url.contains('?') { '&' } else { '?' };
        let url = format!("{postgres_url}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self { url, _dir: dir, postgres: Some((postgres_url.to_owned(), schema)) })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.postgres {
            let _ = block_on(execute(url, &format!("DROP SCHEMA \"{schema}\" CASCADE")));
        }
    }
}

fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await?;
    Ok(())
}

/// The configuration every benchmark server runs with: auth on, as in production.
pub fn config(database: &Database) -> anyhow::Result<(Config, tempfile::TempDir)> {
    let data_dir = tempfile::tempdir()?;
    let mut config = Config { data_dir: data_dir.path().to_owned(), ..Config::default() };
    config.http.addr = ListenAddr::parse("127.0.0.1:0").map_err(anyhow::Error::msg)?;
    config.auth.require = true;
    config.auth.jwt_signing_key = Some(SigningKey::from_bytes(KEY.to_vec()));
    config.kms.master_key = Some(KmsKey::from_bytes(vec![9; 32]));
    config.db.url = database.url.clone();
    config.db.max_connections = 8;
    Ok((config, data_dir))
}

/// The signing key and KMS key, as their variables give them.
/// The `kubeop` binary to run: `given`, or the one beside this benchmark's executable.
pub fn binary(given: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    let binary = match given {
        Some(binary) => binary.to_owned(),
        None => std::env::current_exe()?.with_file_name("kubeop"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "{} not found: build it first (cargo build --release -p kubeop -p kubeop-bench)",
        binary.display()
    );
    Ok(binary)
}

pub fn signing_key_base64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(KEY)
}

pub fn kms_key_base64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([9u8; 32])
}

/// An admin token the benchmark servers accept.
pub fn admin_token() -> Arc<str> {
    token_for(&Caller::Admin { subject: "bench".into() }).into()
}

/// A token for `caller` that the benchmark servers accept, valid for an hour.
pub fn token_for(caller: &Caller) -> String {
    Authenticator::new(&SigningKey::from_bytes(KEY.to_vec()), true, Duration::from_secs(30 * 24 * 3600))
        .mint(caller, Duration::from_secs(3600))
        .token
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    _data_dir: tempfile::TempDir,
}

impl Running {
    /// Starts a manager; `adjust` may change it before it serves (e.g. skip the image policy).
    pub fn start(
        config: Config,
        data_dir: tempfile::TempDir,
        adjust: impl FnOnce(kubeop_api::Server) -> kubeop_api::Server,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let server = adjust(runtime.block_on(kubeop_api::Server::build(&config))?);
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop: Some(stop), runtime: Some(runtime), _data_dir: data_dir })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
