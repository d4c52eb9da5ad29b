//! Prometheus metrics: one registry per server (tests run many servers in one process), the
//! process collector, HTTP requests by route template, store latency by operation, usage and
//! invoices, and the plugin host's own collectors.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubeop_plugins::PluginMetrics;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Cheap to clone: every request's middleware takes one.
#[derive(Clone)]
pub struct Metrics(std::sync::Arc<Collectors>);

pub struct Collectors {
    pub registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    pub db_seconds: HistogramVec,
    pub plugins: PluginMetrics,
    pub usage_points: prometheus::IntCounter,
    pub usage_refused: IntCounterVec,
    pub usage_replays: prometheus::IntCounter,
    pub invoices: prometheus::IntCounter,
    pub invoice_pricing_seconds: prometheus::Histogram,
}

/// Buckets from 100 µs to 10 s: API calls are usually a few milliseconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "kubeop_http_requests_total",
                "HTTP requests answered, by method, route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "kubeop_http_request_duration_seconds",
                "HTTP request latency by method and route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        let db_seconds = HistogramVec::new(
            HistogramOpts::new(
                "kubeop_db_operation_duration_seconds",
                "Store operation latency by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let plugins = PluginMetrics::register(&registry, LATENCY_BUCKETS).expect("registered once");
        let usage_points =
            prometheus::IntCounter::new("kubeop_usage_points_ingested_total", "Usage points written")
                .expect("valid metric");
        let usage_refused = IntCounterVec::new(
            Opts::new("kubeop_usage_batches_refused_total", "Usage batches refused, by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let usage_replays = prometheus::IntCounter::new(
            "kubeop_usage_idempotent_replays_total",
            "Ingest requests answered from an earlier request with the same Idempotency-Key",
        )
        .expect("valid metric");
        let invoices = prometheus::IntCounter::new("kubeop_invoices_computed_total", "Invoices computed")
            .expect("valid metric");
        let invoice_pricing_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "kubeop_invoice_pricing_seconds",
                "Time to price an invoice, plugin calls included",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry.register(Box::new(usage_points.clone())).expect("registered once");
        registry.register(Box::new(usage_refused.clone())).expect("registered once");
        registry.register(Box::new(usage_replays.clone())).expect("registered once");
        registry.register(Box::new(invoices.clone())).expect("registered once");
        registry.register(Box::new(invoice_pricing_seconds.clone())).expect("registered once");
        registry.register(Box::new(http_requests.clone())).expect("registered once");
        registry.register(Box::new(http_seconds.clone())).expect("registered once");
        registry.register(Box::new(db_seconds.clone())).expect("registered once");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("registered once");
        Self(std::sync::Arc::new(Collectors {
            registry,
            http_requests,
            http_seconds,
            db_seconds,
            plugins,
            usage_points,
            usage_refused,
            usage_replays,
            invoices,
            invoice_pricing_seconds,
        }))
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into a Vec");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl std::ops::Deref for Metrics {
    type Target = Collectors;

    fn deref(&self) -> &Collectors {
        &self.0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every request under its route template (`/v1/tenants/{id}`), never the raw
/// path, so ids do not explode the label set.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.http_seconds.with_label_values(&[&method, &route]).observe(started.elapsed().as_secs_f64());
    metrics.http_requests.with_label_values(&[&method, &route, response.status().as_str()]).inc();
    response
}
