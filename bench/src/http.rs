//! Manager API throughput and latency, per database engine, against `GET /healthz` measured on
//! the same server in the same run (the ceiling of HTTP on this machine).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;

use crate::load::{self, MakeRequest, Outcome};
use crate::server::{self, Database, Running};

#[derive(clap::Args)]
pub struct Options {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Tenants created before reads are measured.
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// PostgreSQL to measure against (a schema is made for the run and dropped after).
    #[arg(long, env = "KUBEOP_TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
    /// Only this engine: sqlite or postgres.
    #[arg(long)]
    pub engine: Option<String>,
}

impl Options {
    pub fn engines(&self) -> impl Iterator<Item = &'static str> + '_ {
        ["sqlite", "postgres"]
            .into_iter()
            .filter(|engine| self.engine.as_deref().is_none_or(|only| only == *engine))
    }
}

pub fn run(options: Options) -> anyhow::Result<()> {
    println!(
        "HTTP benchmark: {} connections, {} s per measurement, auth on (HS256 bearer), {} cores",
        options.connections,
        options.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_header();
    for engine in options.engines() {
        let database = Database::create(engine, &options.postgres)?;
        let (config, data_dir) = server::config(&database)?;
        let server = Running::start(config, data_dir, |server| server)?;
        // A second server on the same database, every read going to the database.
        let (mut uncached, data_dir) = server::config(&database)?;
        uncached.db.read_cache_ttl_ms = 0;
        let uncached = Running::start(uncached, data_dir, |server| server)?;
        let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        client.block_on(measure_endpoints(engine, server.addr, uncached.addr, &options))?;
    }
    println!(
        "\nGoals: reads at ≥ 50% of the healthz ceiling; p99 < 5 ms at half of the peak rate.\n\
         Reads by id are served from a per-replica cache (db.read_cache_ttl_ms, 1 s); \"cache off\" is a\n\
         second server on the same database with it off.\n\
         Load generator and server share this machine's cores; the ratio compares like with like."
    );
    Ok(())
}

pub fn print_header() {
    println!(
        "{:<9} {:<26} {:>9} {:>8} {:>8} {:>10} {:>14} {:>14}",
        "engine", "endpoint", "req/s", "p50 ms", "p99 ms", "÷ baseline", "rate for half", "p99 ms @ half"
    );
}

async fn measure_endpoints(
    engine: &str,
    addr: SocketAddr,
    uncached: SocketAddr,
    options: &Options,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(options.seconds);
    let token = Some(server::admin_token());
    let mut ids = Vec::with_capacity(options.tenants);
    for n in 0..options.tenants {
        ids.push(
            load::create(addr, token.clone(), "/v1/tenants", format!(r#"{{"name":"seed-{n}"}}"#)).await?,
        );
    }
    let ids = Arc::new(ids);
    let run = ulid::Ulid::generate().to_string().to_lowercase();

    let healthz: MakeRequest = Arc::new(|_, _| (Method::GET, "/healthz".to_owned(), None));
    let get: MakeRequest = Arc::new(move |connection, n| {
        let id = &ids[(connection * 7919 + n as usize * 31) % ids.len()];
        (Method::GET, format!("/v1/tenants/{id}"), None)
    });
    let post = |phase: &'static str| -> MakeRequest {
        let run = run.clone();
        Arc::new(move |connection, n| {
            let name = format!("b{}-{phase}-{connection}-{n}", &run[20..]);
            (Method::POST, "/v1/tenants".to_owned(), Some(format!(r#"{{"name":"{name}"}}"#)))
        })
    };

    // Warm up connections, statement caches and the allocator.
    load::closed_loop(addr, token.clone(), options.connections, Duration::from_secs(1), get.clone()).await?;

    let ceiling = load::closed_loop(addr, token.clone(), options.connections, duration, healthz).await?;
    report(engine, "GET /healthz (baseline)", &ceiling, ceiling.per_second(), None);
    load::closed_loop(uncached, token.clone(), options.connections, Duration::from_secs(1), get.clone())
        .await?;
    for (name, target, peak_make, half_make) in [
        ("GET /v1/tenants/{id}", addr, get.clone(), get.clone()),
        ("GET …/{id}, cache off", uncached, get.clone(), get),
        ("POST /v1/tenants", addr, post("peak"), post("half")),
    ] {
        let peak = load::closed_loop(target, token.clone(), options.connections, duration, peak_make).await?;
        let half_rate = peak.per_second() / 2.0;
        let half =
            load::open_loop(addr, token.clone(), options.connections, half_rate, duration, half_make).await?;
        report(engine, name, &peak, ceiling.per_second(), Some((half_rate, &half)));
    }
    Ok(())
}

pub fn report(engine: &str, endpoint: &str, peak: &Outcome, baseline: f64, half: Option<(f64, &Outcome)>) {
    let (rate, half_p99) = match half {
        Some((rate, outcome)) => (format!("{rate:.0}/s"), format!("{:.2}", outcome.millis(0.99))),
        None => ("-".into(), "-".into()),
    };
    let errors = peak.errors + half.map_or(0, |(_, o)| o.errors);
    println!(
        "{:<9} {:<26} {:>9.0} {:>8.2} {:>8.2} {:>9.0}% {:>14} {:>14}{}",
        engine,
        endpoint,
        peak.per_second(),
        peak.millis(0.5),
        peak.millis(0.99),
        100.0 * peak.per_second() / baseline,
        rate,
        half_p99,
        if errors > 0 { format!("  ({errors} errors)") } else { String::new() }
    );
}
