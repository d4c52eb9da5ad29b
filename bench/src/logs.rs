//! The cost of the access log, on the real `kubeop serve` as the production profile configures
//! it (JSON lines at `info`, one a request, written to a file), against the same binary and
//! profile with `KUBEOP_LOG__FILTER=warn` (no access lines), as the review measured it. Off and on
//! alternate for several rounds in one run, each on a fresh process, and the ratio is the median
//! over the rounds, so a noisy moment on this shared machine moves one round, not the figure.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http::{print_header, report};
use crate::load::{self, MakeRequest, Outcome};
use crate::server::{self, Database};

#[derive(clap::Args)]
pub struct Options {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Rounds of log off, then on.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// PostgreSQL to measure against (a schema is made for the run and dropped after).
    #[arg(long, env = "KUBEOP_TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// The `kubeop` binary (default: beside this benchmark's executable).
    #[arg(long)]
    binary: Option<PathBuf>,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    let binary = server::binary(options.binary.as_deref())?;
    println!(
        "Access-log benchmark: `kubeop serve` with the production profile, log filter `warn` (off) \
         and `info` (on), {} connections, {} s per measurement, {} rounds, {} cores",
        options.connections,
        options.seconds,
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let database = Database::create("postgres", &options.postgres)?;
    print_header();
    let mut ratios = [Vec::new(), Vec::new()];
    for round in 1..=options.rounds {
        let (off, _) = measure(&binary, &database, "warn", round, &options)?;
        let (on, lines) = measure(&binary, &database, "info", round, &options)?;
        for (i, endpoint) in ["GET /healthz", "GET /v1/tenants/{id}"].into_iter().enumerate() {
            report("postgres", &format!("{endpoint}, off #{round}"), &off[i], off[i].per_second(), None);
            report("postgres", &format!("{endpoint}, on #{round}"), &on[i], off[i].per_second(), None);
            ratios[i].push(on[i].per_second() / off[i].per_second());
        }
        let requests: u64 = on.iter().map(|o| o.requests).sum();
        println!(
            "          round {round}: {lines} access lines written for {requests} measured requests (plus warm-up)"
        );
    }
    println!();
    for (endpoint, mut ratios) in ["GET /healthz", "GET /v1/tenants/{id}"].into_iter().zip(ratios) {
        ratios.sort_by(f64::total_cmp);
        let rounds: Vec<String> = ratios.iter().map(|r| format!("{:.0}%", 100.0 * r)).collect();
        println!(
            "{endpoint}: with the access log on, median {:.0}% of the log-off throughput (rounds, sorted: {})",
            100.0 * ratios[ratios.len() / 2],
            rounds.join(", ")
        );
    }
    println!("Goal: with the access log on, ≥ 80% of the log-off throughput.");
    Ok(())
}

/// One fresh server with `filter`: `GET /healthz` and `GET /v1/tenants/{id}`, and the lines its
/// log file holds afterwards.
fn measure(
    binary: &Path,
    database: &Database,
    filter: &str,
    round: usize,
    options: &Options,
) -> anyhow::Result<([Outcome; 2], usize)> {
    let server = Server::start(binary, database, filter)?;
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let token = Some(server::admin_token());
    let name = format!(r#"{{"name":"logs-{filter}-{round}"}}"#);
    let id = client.block_on(load::create(server.addr, token.clone(), "/v1/tenants", name))?;
    let healthz: MakeRequest = Arc::new(|_, _| (Method::GET, "/healthz".to_owned(), None));
    let get: MakeRequest = Arc::new(move |_, _| (Method::GET, format!("/v1/tenants/{id}"), None));
    let duration = Duration::from_secs(options.seconds);
    let mut outcomes = Vec::new();
    for make in [healthz, get] {
        outcomes.push(client.block_on(async {
            let warm_up = Duration::from_secs(1);
            load::closed_loop(server.addr, token.clone(), options.connections, warm_up, make.clone()).await?;
            load::closed_loop(server.addr, token.clone(), options.connections, duration, make).await
        })?);
    }
    // A graceful stop flushes the log.
    let mut server = server;
    server.stop();
    let log = std::fs::read_to_string(&server.log)?;
    let lines = log.lines().filter(|line| line.contains(r#""message":"request""#)).count();
    let [healthz, get] = <[Outcome; 2]>::try_from(outcomes).map_err(|_| anyhow::anyhow!("two outcomes"))?;
    Ok(([healthz, get], lines))
}

/// `kubeop serve --profile production` in its own process, logging to a file.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path, database: &Database, filter: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("kubeop.log");
        // A free port: the production profile logs its address only at `info`, and to the file.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(binary)
            .arg("serve")
            .current_dir(dir.path())
            .env("KUBEOP_PROFILE", "production")
            .env("KUBEOP_HTTP_ADDR", addr.to_string())
            .env("KUBEOP_DB_URL", &database.url)
            .env("KUBEOP_JWT_SIGNING_KEY", server::signing_key_base64())
            .env("KUBEOP_KMS_MASTER_KEY", server::kms_key_base64())
            .env("KUBEOP_LOG__FILE", &log)
            .env("KUBEOP_LOG__FILTER", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let server = Self { child, addr, log, _dir: dir };
        let started = Instant::now();
        while crate::attack::probe(addr) != 200 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "kubeop serve did not answer on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// SIGTERM: a graceful stop, which flushes the log.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg(self.child.id().to_string()).status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
