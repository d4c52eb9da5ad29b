//! The plugin host's Prometheus metrics, registered into the server's registry.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Cheap to clone.
#[derive(Clone)]
pub struct PluginMetrics {
    calls: IntCounterVec,
    failures: IntCounterVec,
    seconds: HistogramVec,
    loads: IntCounterVec,
}

impl PluginMetrics {
    /// Creates the collectors and registers them in `registry`; `buckets` are the call-time
    /// histogram's, in seconds.
    pub fn register(registry: &Registry, buckets: &[f64]) -> prometheus::Result<Self> {
        let calls =
            IntCounterVec::new(Opts::new("kubeop_plugin_calls_total", "Plugin calls by slot"), &["slot"])?;
        let failures = IntCounterVec::new(
            Opts::new(
                "kubeop_plugin_call_failures_total",
                "Failed plugin calls by slot and kind (timeout, memory, stack_overflow, trap, output_too_large, instantiate)",
            ),
            &["slot", "kind"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "kubeop_plugin_call_duration_seconds",
                "Plugin call time by slot, queueing included",
            )
            .buckets(buckets.to_vec()),
            &["slot"],
        )?;
        let loads = IntCounterVec::new(
            Opts::new(
                "kubeop_plugin_loads_total",
                "Plugin components made live (loaded) or refused, by slot",
            ),
            &["slot", "outcome"],
        )?;
        for counter in [&calls, &failures, &loads] {
            registry.register(Box::new(counter.clone()))?;
        }
        registry.register(Box::new(seconds.clone()))?;
        Ok(Self { calls, failures, seconds, loads })
    }

    pub(crate) fn call(&self, slot: &str, elapsed: Duration, failure: Option<&str>) {
        self.calls.with_label_values(&[slot]).inc();
        self.seconds.with_label_values(&[slot]).observe(elapsed.as_secs_f64());
        if let Some(kind) = failure {
            self.failures.with_label_values(&[slot, kind]).inc();
        }
    }

    pub(crate) fn load(&self, slot: &str, outcome: &str) {
        self.loads.with_label_values(&[slot, outcome]).inc();
    }
}
