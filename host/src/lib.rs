//! kubeop: the control plane of a multi-tenant Kubernetes platform.
//!
//! [`Server::build`] wires configuration, storage, auth and the HTTP API together; `main.rs`,
//! the black-box tests and the benchmarks all start the manager through it.

pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod kms;
pub mod metrics;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::{AppState, Limits};
use crate::kms::Kms;
use crate::metrics::Metrics;
use crate::store::Store;

/// The manager, bound to its port and ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
}

impl Server {
    /// Opens and migrates the database, loads the keys and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let store = open_store(config, &metrics).await?;
        store.migrate().await.context("migrating the database")?;
        let signing_key = config.signing_key()?;
        let kms = config.kms_key()?.map(|key| Kms::new(&key));
        if kms.is_none() {
            tracing::warn!("no KMS master key (KUBEOP_KMS_MASTER_KEY): /readyz answers 503");
        }
        let state = AppState {
            store,
            auth: Arc::new(Authenticator::new(&signing_key, config.auth.require)),
            metrics,
            kms,
            limits: Limits {
                max_token_ttl: Duration::from_secs(u64::from(config.auth.max_token_ttl_minutes) * 60),
                body_limit_bytes: config.http.body_limit_bytes,
            },
        };
        let addr = config.http.addr.socket_addr();
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self { listener, state, grace: Duration::from_secs(config.http.shutdown_grace_secs) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes; in-flight requests get the grace period to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let store = self.state.store.clone();
        let serve = axum::serve(self.listener, http::app(self.state)).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(());
        });
        let grace = self.grace;
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
                tracing::warn!(?grace, "grace period over; dropping unfinished requests");
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = serve.into_future() => result,
            () = deadline => Ok(()),
        };
        store.close().await;
        result
    }
}

/// Opens the configured database (without migrating it).
pub async fn open_store(config: &Config, metrics: &Metrics) -> anyhow::Result<Store> {
    let url = config.database_url();
    Store::connect(
        &url,
        config.db.max_connections,
        Duration::from_secs(config.db.acquire_timeout_secs),
        metrics.db_seconds.clone(),
    )
    .await
    .with_context(|| format!("cannot open the database at {}", config::redacted_url(&url)))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
