//! The database → cluster path: a burst of project creations on a tenant whose cluster is the
//! project's fake API server over HTTPS. Measured: how long until every Project resource exists
//! on the cluster, and `POST /v1/projects` latency with the reconciler on against the same
//! server kind with it off (the outbox is written either way: the request never waits on the
//! cluster, so the two should match). Rounds alternate on/off. Then kubeconfig issuance.

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
        "Kubernetes benchmark: {} projects per burst, {} connections, {} rounds per server, HTTPS fake API \
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
    for engine in ["sqlite", "postgres"] {
        if options.engine.as_deref().is_some_and(|only| only != engine) {
            continue;
        }
        let start = |reconciler: bool| -> anyhow::Result<(Running, Database)> {
            let database = Database::create(engine, &options.postgres)?;
            let (mut config, data_dir) = server::config(&database)?;
            config.kube.reconciler = reconciler;
            Ok((Running::start(config, data_dir, |server| server)?, database))
        };
        let (on, _on_db) = start(true)?;
        let (off, _off_db) = start(false)?;
        let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        client.block_on(measure(engine, &fake, &kubeconfig, on.addr, off.addr, &options))?;
    }
    println!(
        "\nGoal: POST /v1/projects with the reconciler on within 5% of off (the request never waits on\n\
         the cluster); kubeconfig issuance p99 ≤ 20 ms. \"all applied\" runs from the first request of a\n\
         burst to the moment the fake holds every Project of it."
    );
    Ok(())
}

async fn measure(
    engine: &str,
    fake: &FakeKube,
    kubeconfig: &str,
    on: SocketAddr,
    off: SocketAddr,
    options: &Options,
) -> anyhow::Result<()> {
    let token = Some(server::admin_token());
    let body = format!(r#"{{"name":"fake","kubeconfig":"{kubeconfig}"}}"#);
    let cluster_on = load::create(on, token.clone(), "/v1/clusters", body.clone()).await?;
    let cluster_off = load::create(off, token.clone(), "/v1/clusters", body).await?;
    let mut latency = [histogram(), histogram()];
    let mut rates = [Vec::new(), Vec::new()];
    let mut applied = Vec::new();
    let mut last_project = String::new();
    for round in 0..options.rounds {
        for (slot, (label, addr, cluster)) in
            [("on", on, &cluster_on), ("off", off, &cluster_off)].into_iter().enumerate()
        {
            let tenant_body = format!(r#"{{"name":"r{round}-{label}","clusterID":"{cluster}"}}"#);
            let tenant = load::create(addr, token.clone(), "/v1/tenants", tenant_body).await?;
            let make: MakeRequest = {
                let tenant = tenant.clone();
                Arc::new(move |_, n| {
                    let body = format!(r#"{{"tenantID":"{tenant}","name":"p{n}"}}"#);
                    (Method::POST, "/v1/projects".to_owned(), Some(body))
                })
            };
            let started = Instant::now();
            let outcome =
                load::burst(addr, token.clone(), options.connections, options.projects, make).await?;
            anyhow::ensure!(outcome.errors == 0, "{} POST /v1/projects failed", outcome.errors);
            latency[slot].add(&outcome.latency)?;
            rates[slot].push(outcome.per_second());
            if label == "on" {
                applied.push(wait_for_projects(fake, &tenant, options.projects, started).await?);
                let listed = load::send_once(
                    addr,
                    token.clone(),
                    Method::GET,
                    &format!("/v1/projects?tenantID={tenant}&limit=1"),
                    None,
                )
                .await?;
                let projects: serde_json::Value = serde_json::from_slice(&listed.1)?;
                last_project = projects[0]["id"].as_str().unwrap_or_default().to_owned();
            }
        }
    }
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ratio = p50(&latency[0]) / p50(&latency[1]);
    let applied_median = median(&mut applied);
    println!(
        "{:<9} {:<28} {:>8.2} {:>8.2} {:>9.0} {:>11.0}% {:>14.2}",
        engine,
        "POST /v1/projects, rec. on",
        p50(&latency[0]),
        p99(&latency[0]),
        median(&mut rates[0]),
        100.0 * ratio,
        applied_median
    );
    println!(
        "{:<9} {:<28} {:>8.2} {:>8.2} {:>9.0} {:>12} {:>14}",
        engine,
        "POST /v1/projects, rec. off",
        p50(&latency[1]),
        p99(&latency[1]),
        median(&mut rates[1]),
        "100%",
        "-"
    );

    let path = format!("/v1/kubeconfigs/project/{last_project}");
    let make: MakeRequest = Arc::new(move |_, _| (Method::GET, path.clone(), None));
    // One first, so the namespace, ServiceAccount and RoleBinding exist: then each issuance is
    // what a returning user costs (three idempotent applies and a TokenRequest).
    load::burst(on, token.clone(), 1, 1, make.clone()).await?;
    let issued: Outcome = load::burst(on, token, 4, options.kubeconfigs, make).await?;
    anyhow::ensure!(issued.errors == 0, "{} kubeconfig requests failed", issued.errors);
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
