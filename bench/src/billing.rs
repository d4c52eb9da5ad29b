//! Usage ingest throughput with 1,000-point batches, and the time of one invoice over a full
//! month of hourly usage (744 hours), pricing plugin included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, DurationRound, TimeZone, Utc};
use hdrhistogram::Histogram;
use hyper::Method;

use crate::http::{self, report};
use crate::load::{self, MakeRequest};
use crate::server::{self, Database, Running};

#[derive(clap::Args)]
// Not `Options`: http::Options, flattened in, has that group id (clap's debug assertions panic).
#[group(id = "billing")]
pub struct Options {
    #[command(flatten)]
    http: http::Options,
    /// Points per ingest request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Tenants the points are spread over.
    #[arg(long, default_value_t = 10)]
    spread: usize,
    /// Invoices timed one after another.
    #[arg(long, default_value_t = 2000)]
    invoices: usize,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!(
        "== usage ingest, {}-point batches over {} tenants, {} connections",
        options.batch, options.spread, options.http.connections
    );
    http::print_header();
    for engine in options.http.engines() {
        let database = Database::create(engine, &options.http.postgres)?;
        let server = start(&database)?;
        client.block_on(async {
            let token = Some(server::admin_token());
            let mut tenants = Vec::new();
            for n in 0..options.spread {
                tenants.push(
                    load::create(server.addr, token.clone(), "/v1/tenants", format!(r#"{{"name":"t{n}"}}"#))
                        .await?,
                );
            }
            let batches = batches(Arc::new(tenants), options.batch);
            load::closed_loop(
                server.addr,
                token.clone(),
                options.http.connections,
                Duration::from_secs(1),
                batches.clone(),
            )
            .await?;
            let outcome = load::closed_loop(
                server.addr,
                token,
                options.http.connections,
                Duration::from_secs(options.http.seconds),
                batches,
            )
            .await?;
            report(engine, "POST /v1/usage/ingest", &outcome, outcome.per_second(), None);
            println!(
                "{engine:<9} {:.0} points/s ({} points per request)",
                outcome.per_second() * options.batch as f64,
                options.batch
            );
            anyhow::Ok(())
        })?;
    }
    println!("goal: ≥ 50,000 points/s on PostgreSQL\n");

    println!(
        "== one invoice over a full month of hourly usage (744 hours), {} invoices in a row",
        options.invoices
    );
    for engine in options.http.engines() {
        let database = Database::create(engine, &options.http.postgres)?;
        let server = start(&database)?;
        client.block_on(async {
            let token = Some(server::admin_token());
            let tenant = load::create(server.addr, token.clone(), "/v1/tenants", r#"{"name":"acme"}"#.into()).await?;
            let (start, label) = last_31_day_month();
            let points: Vec<String> = (0..744)
                .map(|h| {
                    let ts = (start + chrono::Duration::hours(h)).to_rfc3339();
                    format!(r#"{{"ts":"{ts}","tenant_id":"{tenant}","cpu_milli":{},"mem_mib":{}}}"#, 250 + h % 97, 512 + h % 31)
                })
                .collect();
            let rates = r#"{"cpu_milli":"0.00004","mem_mib":"0.000005","discount_percent":"10","effective_from":"2020-01-01T00:00:00Z"}"#;
            let (status, _) = load::send_once(server.addr, token.clone(), Method::PUT, &format!("/v1/tenants/{tenant}/rates"), Some(rates.into())).await?;
            anyhow::ensure!(status.is_success(), "rates: {status}");
            load::create(server.addr, token.clone(), "/v1/usage/ingest", format!("[{}]", points.join(","))).await.ok();
            let path = format!("/v1/invoices/{tenant}?period={label}");
            let (status, body) = load::send_once(server.addr, token.clone(), Method::GET, &path, None).await?;
            anyhow::ensure!(status.is_success(), "invoice: {status} {}", String::from_utf8_lossy(&body));
            let invoice: serde_json::Value = serde_json::from_slice(&body)?;
            anyhow::ensure!(invoice["usage"].as_array().map(Vec::len) == Some(744), "the month has 744 hours of usage");
            let mut connection = load::Connection::open(server.addr, token).await?;
            let mut micros = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for _ in 0..options.invoices {
                let started = Instant::now();
                let status = connection.send(Method::GET, &path, None).await?;
                anyhow::ensure!(status.is_success(), "invoice: {status}");
                micros.record(started.elapsed().as_micros() as u64)?;
            }
            let ms = |q: f64| micros.value_at_quantile(q) as f64 / 1000.0;
            println!("{engine:<9} GET /v1/invoices/{{id}}?period={label}: p50 {:.2} ms  p99 {:.2} ms  (subtotal {})", ms(0.5), ms(0.99), invoice["subtotal"]);
            anyhow::Ok(())
        })?;
    }
    println!("goal: invoice p99 ≤ 5 ms");
    Ok(())
}

/// A manager that accepts usage from long ago, so a whole past month can be loaded.
fn start(database: &Database) -> anyhow::Result<Running> {
    let (mut config, data_dir) = server::config(database)?;
    config.billing.max_age_days = 400;
    Running::start(config, data_dir, |server| server)
}

/// Batches of points over the tenants and the last 30 days, each batch touching many buckets.
fn batches(tenants: Arc<Vec<String>>, size: usize) -> MakeRequest {
    let now = Utc::now().duration_trunc(chrono::Duration::hours(1)).expect("an hour");
    Arc::new(move |connection, n| {
        let mut body = String::with_capacity(size * 120);
        body.push('[');
        for i in 0..size {
            let tenant = &tenants[i % tenants.len()];
            let hours_ago = ((n as usize * 7 + connection * 13 + i) % 700) as i64;
            let ts = (now - chrono::Duration::hours(hours_ago)).to_rfc3339();
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"ts":"{ts}","tenant_id":"{tenant}","cpu_milli":{},"mem_mib":{}}}"#,
                100 + i % 50,
                256 + i % 64
            ));
        }
        body.push(']');
        (Method::POST, "/v1/usage/ingest".to_owned(), Some(body))
    })
}

/// The most recent finished month with 31 days, and its `YYYY-MM`.
pub(crate) fn last_31_day_month() -> (chrono::DateTime<Utc>, String) {
    let mut first = Utc::now().date_naive().with_day(1).expect("day 1");
    loop {
        let previous = first.pred_opt().expect("a previous day").with_day(1).expect("day 1");
        if (first - previous).num_days() == 31 {
            let start = Utc.from_utc_datetime(&previous.and_hms_opt(0, 0, 0).expect("midnight"));
            return (start, format!("{:04}-{:02}", previous.year(), previous.month()));
        }
        first = previous;
    }
}
