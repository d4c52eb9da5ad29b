//! The image-policy plugin's cost: one call on a fresh instance against the same decision in
//! native Rust; `POST /v1/apps` with the plugin against the same endpoint without it; and a
//! swap under load on two replicas sharing PostgreSQL.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::Method;
use kubeop_core::{ImageRef, PlatformPolicy, ProjectId, TenantId};
use kubeop_plugins::{ImageCheck, SlotKind, Standalone};

use crate::http::{self, report};
use crate::languages;
use crate::load::{self, Connection, MakeRequest, Outcome};
use crate::server::{self, Database, Running};

#[derive(clap::Args)]
// Not `Options`: http::Options, flattened in, has that group id (clap's debug assertions panic).
#[group(id = "plugins")]
pub struct Options {
    #[command(flatten)]
    http: http::Options,
    /// Plugin calls timed one by one (default 20,000; with --lang, 2,000 for interpreted plugins).
    #[arg(long)]
    calls: Option<usize>,
    /// Run one part only: calls, apps or swap (with --lang: see --lang).
    #[arg(long)]
    only: Option<String>,
    #[command(flatten)]
    languages: languages::Options,
}

const ALLOWLIST: [&str; 3] = ["docker.io", "ghcr.io", "quay.io"];
const IMAGE: &str = "ghcr.io/acme/api:1.2";

pub fn run(options: Options) -> anyhow::Result<()> {
    if options.languages.wanted() {
        return languages::run(&options.languages, options.calls, options.only.as_deref(), &options.http);
    }
    let part = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if part("calls") {
        call_cost(options.calls.unwrap_or(20_000))?;
    }
    if part("apps") {
        apps_throughput(&options.http)?;
    }
    if part("swap") {
        swap_under_load(&options.http)?;
    }
    Ok(())
}

fn policy() -> PlatformPolicy {
    PlatformPolicy {
        image_allowlist: PlatformPolicy::parse_registries(&ALLOWLIST.map(String::from))
            .expect("valid registries"),
        ..PlatformPolicy::default()
    }
}

fn call_cost(calls: usize) -> anyhow::Result<()> {
    println!("== image-policy plugin call cost ({calls} calls, one thread)");
    let plugin = Standalone::load(SlotKind::ImagePolicy, SlotKind::ImagePolicy.builtin())?;
    let image = ImageRef::parse(IMAGE)?;
    let request = ImageCheck::new(&image, &TenantId::generate(), &ProjectId::generate(), &policy());
    for _ in 0..1000 {
        plugin.check_image(&request)?;
    }
    let mut nanos = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    for _ in 0..calls {
        let started = Instant::now();
        black_box(plugin.check_image(black_box(&request))?);
        nanos.record(started.elapsed().as_nanos() as u64)?;
    }

    // The same decision in native Rust: exact registry match against the allowlist.
    let allowlist: Vec<String> = ALLOWLIST.map(String::from).to_vec();
    let rounds = 1_000_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = black_box(native_decision(black_box(image.registry()), black_box(&allowlist)));
    }
    let native = started.elapsed().as_nanos() as f64 / rounds as f64;

    // The same call as the API makes it: the slot's concurrency limit and a blocking thread.
    let database = Database::create("sqlite", "")?;
    let (config, data_dir) = server::config(&database)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let slot_nanos = runtime.block_on(async {
        let server = kubeop_api::Server::build(&config).await?;
        let plugins = server.state().plugins.clone();
        for _ in 0..1000 {
            plugins.check_image(&request).await?;
        }
        let mut slot = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
        for _ in 0..calls {
            let started = Instant::now();
            black_box(plugins.check_image(&request).await?);
            slot.record(started.elapsed().as_nanos() as u64)?;
        }
        drop(data_dir);
        anyhow::Ok(slot)
    })?;

    let us = |q: f64| nanos.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "plugin, fresh instance per call:  p50 {:.1} µs  p99 {:.1} µs  mean {:.1} µs",
        us(0.5),
        us(0.99),
        nanos.mean() / 1000.0
    );
    let slot_us = |q: f64| slot_nanos.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "through the slot (limit, blocking thread): p50 {:.1} µs  p99 {:.1} µs",
        slot_us(0.5),
        slot_us(0.99)
    );
    println!("native Rust, same decision:       mean {native:.0} ns");
    println!("plugin p50 ÷ native:              {:.0}×", nanos.value_at_quantile(0.5) as f64 / native);
    println!("goal: ≤ 15 µs per plugin call\n");
    Ok(())
}

/// What the built-in image-policy plugin decides, written natively.
fn native_decision(registry: &str, allowlist: &[String]) -> Result<(), String> {
    let split = |r: &str| -> (String, Option<String>) {
        match r.split_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port.to_owned())),
            None => (r.to_ascii_lowercase(), None),
        }
    };
    let wanted = split(registry);
    if allowlist.is_empty() || allowlist.iter().any(|entry| split(entry) == wanted) {
        Ok(())
    } else {
        Err(format!("registry {registry} is not in the image allowlist ({})", allowlist.join(", ")))
    }
}

/// A manager whose environment allowlist makes the plugin do real work.
fn start(database: &Database, skip_plugin: bool) -> anyhow::Result<Running> {
    let (mut config, data_dir) = server::config(database)?;
    config.policy.image_allowlist = ALLOWLIST.map(String::from).to_vec();
    Running::start(config, data_dir, |server| if skip_plugin { server.skip_image_policy() } else { server })
}

async fn project(addr: SocketAddr) -> anyhow::Result<String> {
    let token = Some(server::admin_token());
    let tenant = load::create(addr, token.clone(), "/v1/tenants", r#"{"name":"bench"}"#.into()).await?;
    load::create(addr, token, "/v1/projects", format!(r#"{{"tenantID":"{tenant}","name":"web"}}"#)).await
}

fn create_apps(project: &str, tag: &'static str) -> MakeRequest {
    let project = project.to_owned();
    let run = ulid::Ulid::generate().to_string().to_lowercase();
    Arc::new(move |connection, n| {
        let body = format!(
            r#"{{"projectID":"{project}","name":"a{}-{tag}-{connection}-{n}","image":"{IMAGE}"}}"#,
            &run[22..]
        );
        (Method::POST, "/v1/apps".to_owned(), Some(body))
    })
}

fn apps_throughput(options: &http::Options) -> anyhow::Result<()> {
    println!("== POST /v1/apps with the image-policy plugin against the same endpoint without it");
    http::print_header();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let duration = Duration::from_secs(options.seconds);
    for engine in options.engines() {
        // Alternate the two, five times each, each run on a fresh database; compare medians.
        let mut runs: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
        for round in 0..10 {
            let skip = round % 2 == 0;
            let database = Database::create(engine, &options.postgres)?;
            let server = start(&database, skip)?;
            let outcome = client.block_on(async {
                let project = project(server.addr).await?;
                let token = Some(server::admin_token());
                load::closed_loop(
                    server.addr,
                    token.clone(),
                    options.connections,
                    Duration::from_secs(1),
                    create_apps(&project, "warm"),
                )
                .await?;
                load::closed_loop(
                    server.addr,
                    token,
                    options.connections,
                    duration,
                    create_apps(&project, "run"),
                )
                .await
            })?;
            runs[usize::from(!skip)].push(outcome);
        }
        let median = |outcomes: &mut Vec<Outcome>| {
            outcomes.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
            outcomes.swap_remove(outcomes.len() / 2)
        };
        let (without, with) = (median(&mut runs[0]), median(&mut runs[1]));
        report(engine, "POST /v1/apps, no plugin", &without, without.per_second(), None);
        report(engine, "POST /v1/apps, plugin", &with, without.per_second(), None);
        println!(
            "{engine:<9} medians of 5 runs each: {:.0} vs {:.0} req/s: the plugin costs {:.1}% of throughput",
            without.per_second(),
            with.per_second(),
            100.0 * (1.0 - with.per_second() / without.per_second())
        );
    }
    println!("goal: ≤ 10% throughput cost\n");
    Ok(())
}

/// Two replicas on one PostgreSQL database under load; `deny-latest` is uploaded to one of them.
/// Measures when each replica starts refusing `:latest` images, and counts failed requests.
fn swap_under_load(options: &http::Options) -> anyhow::Result<()> {
    println!("== swapping the image-policy plugin under load, two replicas on one PostgreSQL database");
    let database = Database::create("postgres", &options.postgres)?;
    let first = start(&database, false)?;
    let second = start(&database, false)?;
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let component = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/wasm-plugins/wasm32-wasip2/release/deny_latest.wasm"
    ))?;
    client.block_on(async {
        let project = project(first.addr).await?;
        let token = server::admin_token();
        let started = Instant::now();
        let stop_at = started + Duration::from_secs(6);
        let mut tasks = Vec::new();
        for index in 0..8 {
            let addr = if index % 2 == 0 { first.addr } else { second.addr };
            let (project, token) = (project.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut connection = Connection::open(addr, Some(token)).await?;
                let mut seen = Vec::new();
                let mut n = 0u64;
                while Instant::now() < stop_at {
                    n += 1;
                    let latest = n.is_multiple_of(2);
                    let image = if latest { "nginx:latest" } else { "nginx:1.25" };
                    let body = format!(r#"{{"projectID":"{project}","name":"s{index}-{n}","image":"{image}"}}"#);
                    let status = connection.send(Method::POST, "/v1/apps", Some(body)).await.ok();
                    seen.push((index % 2, latest, status, Instant::now()));
                }
                anyhow::Ok(seen)
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = Instant::now();
        let upload = reqwest_upload(first.addr, &server::admin_token(), component).await?;
        let swapped = Instant::now();
        anyhow::ensure!(upload.is_success(), "the upload answered {upload}");

        let mut last_allowed = [None::<Instant>; 2];
        let (mut requests, mut failures) = (0u64, 0u64);
        for task in tasks {
            for (replica, latest, status, at) in task.await?? {
                requests += 1;
                match (latest, status.map(|s| s.as_u16())) {
                    (_, Some(200)) if latest => last_allowed[replica] = last_allowed[replica].max(Some(at)),
                    (_, Some(200)) => {}
                    (true, Some(400)) => {}
                    _ => failures += 1,
                }
            }
        }
        println!("upload answered after {:.0} ms", (swapped - sent).as_secs_f64() * 1000.0);
        for (replica, name) in ["replica that took the upload", "other replica"].iter().enumerate() {
            let visible = last_allowed[replica].map_or(0.0, |at| at.saturating_duration_since(swapped).as_secs_f64() * 1000.0);
            println!("{name}: last :latest allowed {visible:.0} ms after the upload answered");
        }
        println!("{requests} requests during the run, {failures} failed (5xx, transport errors or a pinned image refused)");
        println!("goal: new rules on every replica within 2 s, zero failed requests");
        anyhow::Ok(())
    })
}

async fn reqwest_upload(
    addr: SocketAddr,
    token: &str,
    component: Vec<u8>,
) -> anyhow::Result<hyper::StatusCode> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::put("/v1/platform/plugins/image-policy")
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/wasm")
        .body(Full::new(bytes::Bytes::from(component)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}
