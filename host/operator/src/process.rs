//! The operator as a process (`kubeop operator`) or inside the manager (`kubeop serve
//! --operator`): the configuration's `[operator]` section mapped onto [`Settings`] and an
//! [`Election`], the endpoints served, SIGTERM honoured.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kubeop_config::OperatorConfig;
use tokio::net::TcpListener;

use crate::http::{self, Version};
use crate::leader::{self, Election, State};
use crate::{Metrics, Settings};

pub fn settings(config: &OperatorConfig) -> Settings {
    Settings {
        field_manager: config.field_manager.clone(),
        pod_security_level: config.pod_security_level.clone(),
        ingress_namespace: config.ingress_namespace.clone(),
        ingress_class: (!config.ingress_class.is_empty()).then(|| config.ingress_class.clone()),
        dns_namespace: config.dns_namespace.clone(),
        default_quota_cpu: config.default_quota_cpu.clone(),
        default_quota_memory: config.default_quota_memory.clone(),
        retry_min: Duration::from_millis(config.retry_min_ms),
        retry_max: Duration::from_millis(config.retry_max_ms),
    }
}

/// The lease to hold, unless leader election is off. The identity is the pod's name
/// (`POD_NAME`, set by deploy/), else the host's name with the process id.
pub fn election(config: &OperatorConfig) -> Option<Election> {
    config.leader_election.then(|| Election {
        lease_name: config.lease_name.clone(),
        lease_namespace: config.lease_namespace.clone(),
        identity: identity(),
        duration: Duration::from_secs(config.lease_duration_secs),
        grace: Duration::from_secs(config.lease_grace_secs),
    })
}

fn identity() -> String {
    std::env::var("POD_NAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// `kubeop operator`: the endpoints on `listener` and the controllers (while leading) until
/// `shutdown`; then the endpoints stop and the lease is released.
pub async fn run(
    client: kube::Client,
    config: &OperatorConfig,
    listener: TcpListener,
    version: Version,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry);
    let state = Arc::new(State::default());
    let shutdown = shutdown.boxed().shared();
    tracing::info!(addr = %listener.local_addr()?, "kubeop operator serving /healthz, /readyz, /version, /metrics");
    let endpoints = tokio::spawn(http::serve(listener, state.clone(), registry, version, shutdown.clone()));
    let result = leader::run(client, settings(config), metrics, election(config), state, shutdown).await;
    endpoints.await??;
    result
}

/// The controllers inside another process (the manager), their metrics in its registry.
pub fn spawn_embedded(
    client: kube::Client,
    config: &OperatorConfig,
    registry: &prometheus::Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (settings, election) = (settings(config), election(config));
    let metrics = Metrics::new(registry);
    let state = Arc::new(State::default());
    tokio::spawn(leader::run(client, settings, metrics, election, state, shutdown))
}
