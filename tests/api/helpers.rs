//! `TestApp`: a real manager on a free port with a database of its own, SQLite or PostgreSQL.

use std::time::Duration;

use kubeop_api::auth::{Authenticator, Caller};
use kubeop_config::{Config, KmsKey, ListenAddr, SigningKey};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per engine: `both_engines!(name);` expands to
/// `mod name { sqlite(), postgres() }` calling `name(Engine)`.
#[macro_export]
macro_rules! both_engines {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test($crate::helpers::Engine::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test($crate::helpers::Engine::Postgres).await
                }
            }
        )+
    };
}

pub const SIGNING_KEY: [u8; 32] = *b"kubeop-black-box-test-signing-ky";
/// The default `auth.max_token_lifetime_minutes` (30 days).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: kubeop_api::http::AppState,
    /// Sent as the bearer token when set (tests with auth on).
    pub token: Option<String>,
    inspect: Inspect,
    config: Config,
    auth: Authenticator,
    _data_dir: tempfile::TempDir,
    _schema: Option<Schema>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A PostgreSQL schema made for one test and dropped after it.
struct Schema {
    admin_url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        // Drop runs inside the test's runtime; the clean-up gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("KUBEOP_TEST_DATABASE_URL").expect(
        "KUBEOP_TEST_DATABASE_URL must name a PostgreSQL database for the tests \
         (.cargo/config.toml sets postgres://postgres@127.0.0.1:5432/test)",
    )
}

impl TestApp {
    /// A manager with auth off: every request acts as an admin.
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    /// A manager requiring tokens; `app.token` holds an admin token.
    pub async fn spawn_with_auth(engine: Engine) -> Self {
        let mut app = Self::spawn_with(engine, |config| config.auth.require = true).await;
        app.token = Some(app.mint(&Caller::Admin { subject: "test-admin".into() }));
        app
    }

    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config { data_dir: data_dir.path().to_owned(), ..Config::default() };
        config.http.addr = ListenAddr::parse("127.0.0.1:0").unwrap();
        config.http.shutdown_grace_secs = 1;
        config.auth.require = false;
        config.auth.jwt_signing_key = Some(SigningKey::from_bytes(SIGNING_KEY.to_vec()));
        config.kms.master_key = Some(KmsKey::from_bytes(vec![42; 32]));
        config.db.max_connections = 8;
        let schema = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("kt_{}", ulid::Ulid::generate().to_string().to_lowercase());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("PostgreSQL at KUBEOP_TEST_DATABASE_URL answers");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("creating the test schema");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                config.db.url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
                Some(Schema { admin_url, name })
            }
        };
        adjust(&mut config);

        let server = kubeop_api::Server::build(&config).await.expect("the server starts");
        let address = format!("http://{}", server.local_addr());
        let state = server.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        let auth =
            Authenticator::new(&SigningKey::from_bytes(SIGNING_KEY.to_vec()), true, MAX_TOKEN_LIFETIME);
        Self {
            address,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            state,
            token: None,
            inspect: Inspect::connect(engine, &config.database_url()).await,
            config: config.clone(),
            auth,
            _data_dir: data_dir,
            _schema: schema,
            stop: Some(stop),
        }
    }

    /// Another server on the same database, as a second replica behind a load balancer.
    pub async fn replica(&self) -> TestApp {
        self.replica_with(|_| {}).await
    }

    /// A replica whose configuration `adjust` changes (the same database).
    pub async fn replica_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = self.config.clone();
        adjust(&mut config);
        // The same database (for SQLite, the primary's file), its own data directory.
        config.db.url = self.config.database_url();
        config.data_dir = data_dir.path().to_owned();
        let server = kubeop_api::Server::build(&config).await.expect("the replica starts");
        let address = format!("http://{}", server.local_addr());
        let state = server.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            client: self.client.clone(),
            state,
            token: self.token.clone(),
            inspect: Inspect::connect(self.engine(), &config.database_url()).await,
            config,
            auth: Authenticator::new(&SigningKey::from_bytes(SIGNING_KEY.to_vec()), true, MAX_TOKEN_LIFETIME),
            _data_dir: data_dir,
            _schema: None,
            stop: Some(stop),
        }
    }

    /// The configuration the server was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops the server as a crash would, between requests: the database stays (for a
    /// [`TestApp::replica`] to take over).
    pub fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The server's data directory (SQLite file, plugin cache).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    pub fn engine(&self) -> Engine {
        match self.inspect {
            Inspect::Sqlite(_) => Engine::Sqlite,
            Inspect::Postgres(_) => Engine::Postgres,
        }
    }

    /// Uploads a component into a plugin slot.
    pub async fn upload_plugin(&self, slot: &str, component: Vec<u8>) -> Response {
        self.request(Method::PUT, &format!("/v1/platform/plugins/{slot}"))
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await
            .expect("request sent")
    }

    /// A valid token for `caller`, signed with the server's key.
    pub fn mint(&self, caller: &Caller) -> String {
        self.auth.mint(caller, Duration::from_secs(600)).token
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// A request with `token` instead of the app's own.
    pub fn request_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.expect("request sent")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path).json(body).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, body).await
    }

    /// Creates a tenant and returns its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        let body =
            expect_json(self.post("/v1/tenants", &json!({ "name": name })).await, StatusCode::OK).await;
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_project(&self, tenant: &str, name: &str) -> String {
        let response = self.post("/v1/projects", &json!({ "tenantID": tenant, "name": name })).await;
        expect_json(response, StatusCode::OK).await["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_app(&self, project: &str, name: &str, host: &str) -> String {
        let body = json!({ "projectID": project, "name": name, "image": "docker.io/library/nginx:1.25", "host": host });
        expect_json(self.post("/v1/apps", &body).await, StatusCode::OK).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Every item of a list endpoint, following `x-next-cursor`.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = match &after {
                Some(cursor) => format!("{path}{separator}limit=1000&after={cursor}"),
                None => format!("{path}{separator}limit=1000"),
            };
            let response = self.get(&url).await;
            let next = response.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
            let page = expect_json(response, StatusCode::OK).await;
            items.extend(page.as_array().expect("a JSON array").iter().cloned());
            match next {
                Some(cursor) => after = Some(cursor),
                None => return items,
            }
        }
    }

    /// How many rows a table holds, read straight from the database.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match &self.inspect {
            Inspect::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Inspect::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Runs SQL straight on the server's database (to set up faults).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.inspect {
            Inspect::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            Inspect::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("executing test SQL: {e}"));
    }

    /// Keeps a candidate plugin in the database as a replica's upload does, without this
    /// server compiling it (as if another replica had taken the upload).
    pub async fn keep_candidate_elsewhere(&self, slot: &str, component: &[u8]) -> String {
        let sha256 = kubeop_plugins::sha256_hex(component);
        let sql = "INSERT INTO plugin_candidates (sha256, slot, component, uploaded_at, uploaded_by) \
                   VALUES ($1, $2, $3, $4, 'another-replica')";
        let now = chrono::Utc::now();
        match &self.inspect {
            Inspect::Sqlite(pool) => sqlx::query(sql)
                .bind(&sha256)
                .bind(slot)
                .bind(component)
                .bind(now)
                .execute(pool)
                .await
                .map(drop),
            Inspect::Postgres(pool) => sqlx::query(sql)
                .bind(&sha256)
                .bind(slot)
                .bind(component)
                .bind(now)
                .execute(pool)
                .await
                .map(drop),
        }
        .unwrap_or_else(|e| panic!("keeping a candidate: {e}"));
        sha256
    }

    /// Row counts of every resource table, to assert that a refused request wrote nothing.
    pub async fn counts(&self) -> [i64; 3] {
        [self.count_rows("tenants").await, self.count_rows("projects").await, self.count_rows("apps").await]
    }
}

/// The test's own connection to the server's database, for looking behind the API.
enum Inspect {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Inspect {
    async fn connect(engine: Engine, url: &str) -> Self {
        let options = sqlx::pool::PoolOptions::new().max_connections(1);
        match engine {
            Engine::Sqlite => Inspect::Sqlite(options.connect(url).await.expect("the test database opens")),
            Engine::Postgres => Inspect::Postgres(
                sqlx::pool::PoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("the test database opens"),
            ),
        }
    }
}

/// `component` with a custom section holding `tag` appended: the same plugin under a hash no
/// other test has compiled (custom sections may follow any section of a component).
pub fn retagged(component: &[u8], tag: &str) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"kubeop-test";
    let mut section = Vec::new();
    leb128(name.len(), &mut section);
    section.extend_from_slice(name);
    section.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb128(section.len(), &mut out);
    out.extend(section);
    out
}

/// A guest component built from `plugins/` (by the host's build script).
pub fn guest(file: &str) -> Vec<u8> {
    let path = format!("{}/../target/wasm-plugins/wasm32-wasip2/release/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (built by host/build.rs)"))
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error response: the status and a JSON `{"error": …}` containing `needle`.
pub async fn expect_error(response: Response, status: StatusCode, needle: &str) -> String {
    let body = expect_json(response, status).await;
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no `error` string in {body}")).to_owned();
    assert!(message.contains(needle), "error {message:?} does not mention {needle:?}");
    message
}
