//! The database → cluster path: a burst of project creations on a tenant whose cluster is the
//! project's fake API server over HTTPS. Measured: how long until every Project resource exists
//! on the cluster, and `POST /v1/projects` latency with the reconciler on against the same
//! server kind with it off (the outbox is written either way: the request never waits on the
//! cluster, so the two should match), and on a tenant without a cluster (no outbox mark: what
//! the mark itself costs). Rounds alternate. Then kubeconfig issuance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hdrhistogram::Histogram;
use hyper::Method;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kubeop_fake_kube::{FakeKube, Https};

use crate::load::{self, MakeRequest, Outcome};
use crate::server::{self, Database, Running};

#[derive(clap::Args)]
pub struct Options {
    /// Projects created per burst.
    #[arg(long, default_value_t = 1000)]
    projects: u64,
    /// Concurrent connections of a burst.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Bursts per server (alternating reconciler on and off).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Kubeconfigs issued for the issuance latency.
    #[arg(long, default_value_t = 500)]
    kubeconfigs: u64,
    #[arg(long, env = "KUBEOP_TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Only this engine: sqlite or postgres.
    #[arg(long)]
    engine: Option<String>,
}

const CRD: &str = "paas.kubeop.io/v1alpha1";

pub fn run(options: Options) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The fake cluster on a runtime of its own, as if it were another machine (it shares the cores).
    let cluster_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fake = FakeKube::new();
    let https: Https = cluster_runtime.block_on(async {
        let crds: Api<CustomResourceDefinition> = Api::all(fake.client());
        for crd in kubeop_crds::definitions() {
            crds.create(&PostParams::default(), &crd).await?;
        }
        fake.serve_https().await
    })?;
    let kubeconfig = base64::engine::general_purpose::STANDARD.encode(https.admin_kubeconfig());
    println!(
        "Kubernetes benchmark: {} projects per burst, {} connections, {} rounds, HTTPS fake API \
         server in-process, {} cores",
        options.projects,
        options.connections,
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<9} {:<28} {:>8} {:>8} {:>9} {:>12} {:>14}",
        "engine", "measurement", "p50 ms", "p99 ms", "req/s", "÷ off (p50)", "all applied s"
    );
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for engine in ["sqlite", "postgres"] {
        if options.engine.as_deref().is_some_and(|only| only != engine) {
            continue;
        }
        measure(engine, &client, &fake, &kubeconfig, &options)?;
    }
    println!(
        "\nGoal: POST /v1/projects with the reconciler on within 5% of off (the request never waits on\n\
         the cluster); kubeconfig issuance p99 ≤ 20 ms. Every burst runs on a fresh server with a fresh\n\
         database, so no scenario inherits another's rows. \"all applied\" runs from the first request\n\
         of a burst to the moment the fake holds every Project of it (for \"cluster down\", the cluster\n\
         comes back when the burst ends: the figure includes the catch-up)."
    );
    Ok(())
}

/// One scenario of a round: reconciler on or off, the tenant on the cluster or on none, the
/// cluster down during the burst or up.
struct Scenario {
    name: &'static str,
    reconciler: bool,
    cluster: bool,
    down: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario { name: "POST /v1/projects, rec. on", reconciler: true, cluster: true, down: false },
    Scenario { name: "POST /v1/projects, rec. off", reconciler: false, cluster: true, down: false },
    Scenario { name: "  … rec. on, cluster down", reconciler: true, cluster: true, down: true },
    Scenario { name: "  … tenant with no cluster", reconciler: false, cluster: false, down: false },
];

/// A fresh server on a fresh database.
fn start(engine: &str, options: &Options, reconciler: bool) -> anyhow::Result<(Running, Database)> {
    let database = Database::create(engine, &options.postgres)?;
    let (mut config, data_dir) = server::config(&database)?;
    config.kube.reconciler = reconciler;
    Ok((Running::start(config, data_dir, |server| server)?, database))
}

fn measure(
    engine: &str,
    client: &tokio::runtime::Runtime,
    fake: &FakeKube,
    kubeconfig: &str,
    options: &Options,
) -> anyhow::Result<()> {
    let mut latency: Vec<Histogram<u64>> = SCENARIOS.iter().map(|_| histogram()).collect();
    let mut rates: Vec<Vec<f64>> = SCENARIOS.iter().map(|_| Vec::new()).collect();
    let mut applied: Vec<Vec<f64>> = SCENARIOS.iter().map(|_| Vec::new()).collect();
    for _ in 0..options.rounds {
        for (slot, scenario) in SCENARIOS.iter().enumerate() {
            let (server, _database) = start(engine, options, scenario.reconciler)?;
            let (outcome, all_applied) =
                client.block_on(burst(server.addr, fake, kubeconfig, scenario, options))?;
            latency[slot].add(&outcome.latency)?;
            rates[slot].push(outcome.per_second());
            applied[slot].extend(all_applied);
        }
    }
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    let baseline = p50(&latency[1]);
    for (slot, scenario) in SCENARIOS.iter().enumerate() {
        let applied = median(&mut applied[slot]).map_or("-".to_owned(), |s| format!("{s:.2}"));
        println!(
            "{:<9} {:<28} {:>8.2} {:>8.2} {:>9.0} {:>11.0}% {:>14}",
            engine,
            scenario.name,
            p50(&latency[slot]),
            p99(&latency[slot]),
            median(&mut rates[slot]).unwrap_or_default(),
            100.0 * p50(&latency[slot]) / baseline,
            applied
        );
    }

    // Kubeconfig issuance on a project that already has its namespace, ServiceAccount and
    // RoleBinding: what a returning user costs (three idempotent applies and a TokenRequest).
    let (server, _database) = start(engine, options, true)?;
    let issued = client.block_on(async {
        let token = Some(server::admin_token());
        let body = format!(r#"{{"name":"fake","kubeconfig":"{kubeconfig}"}}"#);
        let cluster = load::create(server.addr, token.clone(), "/v1/clusters", body).await?;
        let tenant_body = format!(r#"{{"name":"kc","clusterID":"{cluster}"}}"#);
        let tenant = load::create(server.addr, token.clone(), "/v1/tenants", tenant_body).await?;
        let project_body = format!(r#"{{"tenantID":"{tenant}","name":"web"}}"#);
        let project = load::create(server.addr, token.clone(), "/v1/projects", project_body).await?;
        let path = format!("/v1/kubeconfigs/project/{project}");
        let make: MakeRequest = Arc::new(move |_, _| (Method::GET, path.clone(), None));
        load::burst(server.addr, token.clone(), 1, 1, make.clone()).await?;
        let issued: Outcome = load::burst(server.addr, token, 4, options.kubeconfigs, make).await?;
        anyhow::ensure!(issued.errors == 0, "{} kubeconfig requests failed", issued.errors);
        anyhow::Ok(issued)
    })?;
    println!(
        "{:<9} {:<28} {:>8.2} {:>8.2} {:>9.0} {:>12} {:>14}",
        engine,
        "GET /v1/kubeconfigs/project",
        issued.millis(0.5),
        issued.millis(0.99),
        issued.per_second(),
        "-",
        "-"
    );
    Ok(())
}

/// One burst of project creations on a new tenant; with the reconciler on, also the seconds
/// until every Project is on the fake.
async fn burst(
    addr: SocketAddr,
    fake: &FakeKube,
    kubeconfig: &str,
    scenario: &Scenario,
    options: &Options,
) -> anyhow::Result<(Outcome, Option<f64>)> {
    let token = Some(server::admin_token());
    let tenant_body = if scenario.cluster {
        let body = format!(r#"{{"name":"fake","kubeconfig":"{kubeconfig}"}}"#);
        let cluster = load::create(addr, token.clone(), "/v1/clusters", body).await?;
        format!(r#"{{"name":"acme","clusterID":"{cluster}"}}"#)
    } else {
        r#"{"name":"acme"}"#.to_owned()
    };
    let tenant = load::create(addr, token.clone(), "/v1/tenants", tenant_body).await?;
    let make: MakeRequest = {
        let tenant = tenant.clone();
        Arc::new(move |_, n| {
            let body = format!(r#"{{"tenantID":"{tenant}","name":"p{n}"}}"#);
            (Method::POST, "/v1/projects".to_owned(), Some(body))
        })
    };
    fake.set_down(scenario.down);
    let started = Instant::now();
    let outcome = load::burst(addr, token, options.connections, options.projects, make).await;
    fake.set_down(false);
    let outcome = outcome?;
    anyhow::ensure!(outcome.errors == 0, "{} POST /v1/projects failed", outcome.errors);
    let applied = if scenario.reconciler {
        Some(wait_for_projects(fake, &tenant, options.projects, started).await?)
    } else {
        None
    };
    Ok((outcome, applied))
}

/// Seconds from `started` until the fake holds `count` Projects of `tenant`.
async fn wait_for_projects(
    fake: &FakeKube,
    tenant: &str,
    count: u64,
    started: Instant,
) -> anyhow::Result<f64> {
    let deadline = started + Duration::from_secs(300);
    loop {
        let present = fake
            .objects(CRD, "projects", None)
            .iter()
            .filter(|p| p["metadata"]["labels"]["paas.kubeop.io/tenant-id"] == tenant)
            .count() as u64;
        if present >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {present} of {count} projects reached the cluster");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
