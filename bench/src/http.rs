//! Manager API throughput and latency, per database engine, against `GET /healthz` measured on
//! the same server in the same run (the ceiling of HTTP on this machine).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use kubeop::auth::{Authenticator, Caller};
use kubeop::config::{Config, KmsKey, ListenAddr, SigningKey};
use sqlx::Connection;

use crate::load::{self, MakeRequest, Outcome};

#[derive(clap::Args)]
pub struct Options {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Tenants created before reads are measured.
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// PostgreSQL to measure against (a schema is made for the run and dropped after).
    #[arg(long, env = "KUBEOP_TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Only this engine: sqlite or postgres.
    #[arg(long)]
    engine: Option<String>,
}

const KEY: [u8; 32] = *b"kubeop-benchmark-signing-key-32b";

pub fn run(options: Options) -> anyhow::Result<()> {
    println!(
        "HTTP benchmark: {} connections, {} s per measurement, auth on (HS256 bearer), {} cores",
        options.connections,
        options.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<9} {:<22} {:>9} {:>8} {:>8} {:>10} {:>14} {:>14}",
        "engine", "endpoint", "req/s", "p50 ms", "p99 ms", "÷ healthz", "rate for half", "p99 ms @ half"
    );
    for engine in ["sqlite", "postgres"] {
        if options.engine.as_deref().is_some_and(|only| only != engine) {
            continue;
        }
        measure_engine(engine, &options)?;
    }
    println!(
        "\nGoals: reads at ≥ 50% of the healthz ceiling; p99 < 5 ms at half of the peak rate.\n\
         Load generator and server share this machine's cores; the ratio compares like with like."
    );
    Ok(())
}

fn measure_engine(engine: &str, options: &Options) -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let mut config = Config { data_dir: data_dir.path().to_owned(), ..Config::default() };
    config.http.addr = ListenAddr::parse("127.0.0.1:0").map_err(anyhow::Error::msg)?;
    config.auth.require = true;
    config.auth.jwt_signing_key = Some(SigningKey::from_bytes(KEY.to_vec()));
    config.kms.master_key = Some(KmsKey::from_bytes(vec![9; 32]));
    config.db.max_connections = 16;

    // The server gets a runtime of its own, as it would in its own process.
    let server_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let schema = if engine == "postgres" {
        let name = format!("kbench_{}", ulid::Ulid::generate().to_string().to_lowercase());
        client_runtime.block_on(execute(&options.postgres, &format!("CREATE SCHEMA \"{name}\"")))?;
        let separator = if options.postgres.contains('?') { '&' } else { '?' };
        config.db.url = format!("{}{separator}options=-c%20search_path%3D{name}", options.postgres);
        Some(name)
    } else {
        None
    };

    let result = (|| {
        let server = server_runtime.block_on(kubeop::Server::build(&config))?;
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        server_runtime.spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        let token: Arc<str> = Authenticator::new(&SigningKey::from_bytes(KEY.to_vec()), true)
            .mint(&Caller::Admin { subject: "bench".into() }, Duration::from_secs(3600))
            .token
            .into();
        let outcome = client_runtime.block_on(measure_endpoints(engine, addr, token, options));
        let _ = stop.send(());
        outcome
    })();
    drop(server_runtime);
    if let Some(name) = schema {
        client_runtime.block_on(execute(&options.postgres, &format!("DROP SCHEMA \"{name}\" CASCADE")))?;
    }
    result
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await?;
    Ok(())
}

async fn measure_endpoints(
    engine: &str,
    addr: SocketAddr,
    token: Arc<str>,
    options: &Options,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(options.seconds);
    let token = Some(token);
    // Seed the tenants the reads pick from.
    let seeded: Arc<Vec<String>> = Arc::new(seed_tenants(addr, token.clone(), options.tenants).await?);
    let run = ulid::Ulid::generate().to_string().to_lowercase();

    let healthz: MakeRequest = Arc::new(|_, _| (Method::GET, "/healthz".to_owned(), None));
    let ids = seeded.clone();
    let get: MakeRequest = Arc::new(move |connection, n| {
        let id = &ids[(connection * 7919 + n as usize * 31) % ids.len()];
        (Method::GET, format!("/v1/tenants/{id}"), None)
    });
    let post_make = |phase: &'static str| -> MakeRequest {
        let run = run.clone();
        Arc::new(move |connection, n| {
            let name = format!("b{}-{phase}-{connection}-{n}", &run[20..]);
            (Method::POST, "/v1/tenants".to_owned(), Some(format!(r#"{{"name":"{name}"}}"#)))
        })
    };

    // Warm up connections, statement caches and the allocator.
    load::closed_loop(addr, token.clone(), options.connections, Duration::from_secs(1), get.clone()).await?;

    let ceiling =
        load::closed_loop(addr, token.clone(), options.connections, duration, healthz.clone()).await?;
    report(engine, "GET /healthz", &ceiling, ceiling.per_second(), None);
    let endpoints: [(&str, MakeRequest, MakeRequest); 2] = [
        ("GET /v1/tenants/{id}", get.clone(), get.clone()),
        ("POST /v1/tenants", post_make("peak"), post_make("half")),
    ];
    for (name, peak_make, half_make) in endpoints {
        let peak = load::closed_loop(addr, token.clone(), options.connections, duration, peak_make).await?;
        let half_rate = peak.per_second() / 2.0;
        let half =
            load::open_loop(addr, token.clone(), options.connections, half_rate, duration, half_make).await?;
        report(engine, name, &peak, ceiling.per_second(), Some((half_rate, &half)));
    }
    Ok(())
}

async fn seed_tenants(
    addr: SocketAddr,
    token: Option<Arc<str>>,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = reqwest_like(addr, token);
    for n in 0..count {
        let body = format!(r#"{{"name":"seed-{n}"}}"#);
        let answer = client.post("/v1/tenants", body).await?;
        let tenant: serde_json::Value = serde_json::from_slice(&answer)?;
        ids.lock().unwrap().push(tenant["id"].as_str().unwrap_or_default().to_owned());
    }
    let ids = ids.lock().unwrap().clone();
    anyhow::ensure!(ids.iter().all(|id| id.starts_with("t_")), "seeding tenants failed");
    Ok(ids)
}

/// One sequential connection for seeding.
fn reqwest_like(addr: SocketAddr, token: Option<Arc<str>>) -> Seeder {
    Seeder { addr, token }
}

struct Seeder {
    addr: SocketAddr,
    token: Option<Arc<str>>,
}

impl Seeder {
    async fn post(&self, path: &str, body: String) -> anyhow::Result<bytes::Bytes> {
        use http_body_util::{BodyExt, Full};
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = hyper::Request::post(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = sender.send_request(request.body(Full::new(bytes::Bytes::from(body)))?).await?;
        anyhow::ensure!(response.status().is_success(), "seeding answered {}", response.status());
        Ok(response.into_body().collect().await?.to_bytes())
    }
}

fn report(engine: &str, endpoint: &str, peak: &Outcome, ceiling: f64, half: Option<(f64, &Outcome)>) {
    let (rate, half_p99) = match half {
        Some((rate, outcome)) => (format!("{rate:.0}/s"), format!("{:.2}", outcome.millis(0.99))),
        None => ("-".into(), "-".into()),
    };
    let errors = peak.errors + half.map_or(0, |(_, o)| o.errors);
    println!(
        "{:<9} {:<22} {:>9.0} {:>8.2} {:>8.2} {:>9.0}% {:>14} {:>14}{}",
        engine,
        endpoint,
        peak.per_second(),
        peak.millis(0.5),
        peak.millis(0.99),
        100.0 * peak.per_second() / ceiling,
        rate,
        half_p99,
        if errors > 0 { format!("  ({errors} errors)") } else { String::new() }
    );
}
