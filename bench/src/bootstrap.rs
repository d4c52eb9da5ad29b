//! `POST /v1/platform/bootstrap`'s work against the HTTPS fake API server: the embedded
//! manifests applied in order to a fresh cluster, then again to the same cluster (everything
//! unchanged). Baseline in the same run: one `GET /version` round trip to the same server, so
//! the per-object cost reads as a number of round trips (each object costs a GET and an apply).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kubeop_core::PlatformPolicy;
use kubeop_fake_kube::FakeKube;
use kubeop_kube::Connected;
use kubeop_kube::platform::{self, Install};

#[derive(clap::Args)]
pub struct Options {
    /// Fresh clusters bootstrapped (each then bootstrapped a second time).
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// `GET /version` round trips for the baseline.
    #[arg(long, default_value_t = 2000)]
    round_trips: usize,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The fake on a runtime of its own, as if it were another machine (it shares the cores).
    let cluster = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let install = Install {
        image: "ghcr.io/kubeop/kubeop:bench".into(),
        image_pull_policy: "IfNotPresent".into(),
        webhook_failure_policy: "Fail".into(),
        metrics_server: false,
        mocks: false,
        policy: PlatformPolicy::default(),
    };
    let objects = platform::objects(&install);
    println!(
        "Bootstrap benchmark: {} objects, {} fresh clusters, HTTPS fake API server in-process, {} cores",
        objects.len(),
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (mut fresh, mut again, mut trip) = (histogram(), histogram(), histogram());
    let mut baseline_connected = None;
    for _ in 0..options.rounds {
        let fake = FakeKube::new();
        let https = cluster.block_on(fake.serve_https())?;
        let connected = client.block_on(connect(&https.admin_kubeconfig()))?;
        let fm = "kubeop";
        let started = Instant::now();
        let applied = client.block_on(platform::bootstrap(&connected, &objects, fm))?;
        record(&mut fresh, started.elapsed());
        anyhow::ensure!(applied.iter().all(|a| a.result == "created"), "a fresh cluster gets every object");
        let started = Instant::now();
        let applied = client.block_on(platform::bootstrap(&connected, &objects, fm))?;
        record(&mut again, started.elapsed());
        anyhow::ensure!(
            applied.iter().all(|a| a.result == "unchanged"),
            "the second bootstrap changes nothing"
        );
        baseline_connected = Some((fake, https, connected));
    }
    let (_fake, _https, connected) = baseline_connected.expect("at least one round");
    for _ in 0..options.round_trips {
        let started = Instant::now();
        client.block_on(connected.client.apiserver_version())?;
        record(&mut trip, started.elapsed());
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let trip_p50 = ms(&trip, 0.5);
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>22}",
        "measurement", "p50 ms", "p99 ms", "max ms", "per object ÷ round trip"
    );
    for (name, h) in [("bootstrap, fresh cluster", &fresh), ("bootstrap again (all unchanged)", &again)] {
        let per_object = ms(h, 0.5) / objects.len() as f64;
        println!(
            "{name:<34} {:>8.1} {:>8.1} {:>8.1} {:>22.2}",
            ms(h, 0.5),
            ms(h, 0.99),
            h.max() as f64 / 1000.0,
            per_object / trip_p50
        );
    }
    println!(
        "{:<34} {:>8.3} {:>8.3} {:>8.3}",
        "GET /version round trip (baseline)",
        trip_p50,
        ms(&trip, 0.99),
        trip.max() as f64 / 1000.0
    );
    println!(
        "\nGoal: a bootstrap under 1 s (each object is a GET and a server-side apply: about 2 round trips)."
    );
    Ok(())
}

async fn connect(kubeconfig: &str) -> anyhow::Result<Connected> {
    let (config, _server) = kubeop_kube::parse_kubeconfig(kubeconfig).await?;
    let client = kube::Client::try_from(config.clone())?;
    Ok(Connected { id: None, client, config: Arc::new(config) })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(elapsed.as_micros() as u64);
}
