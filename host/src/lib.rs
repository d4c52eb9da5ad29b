//! kubeop: the control plane of a multi-tenant Kubernetes platform.
//!
//! [`Server::build`] wires configuration, storage, auth and the HTTP API together; `main.rs`,
//! the black-box tests and the benchmarks all start the manager through it.

pub mod auth;
pub mod billing;
pub mod config;
pub mod domain;
pub mod http;
pub mod kms;
pub mod metrics;
pub mod plugins;
pub mod policy;
mod replicas;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::{AppState, Limits, Shared};
use crate::kms::Kms;
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::store::{Store, StoreOptions};

/// The manager, bound to its port and ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    sync_interval: Duration,
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
        let policy = policy::PolicyState::load(config.policy.parse()?, &store).await?;
        let billing = billing::Settings::from_config(&config.billing)?;
        let plugins = Plugins::start(
            &config.plugins,
            Some(config.data_dir.join("plugin-cache")),
            store.clone(),
            metrics.clone(),
        )
        .await?;
        let state = AppState::new(Shared {
            store,
            auth: Arc::new(Authenticator::new(&signing_key, config.auth.require)),
            metrics,
            kms,
            plugins,
            policy: Arc::new(policy),
            billing: Arc::new(billing),
            limits: Limits {
                max_token_ttl: Duration::from_secs(u64::from(config.auth.max_token_ttl_minutes) * 60),
                body_limit_bytes: config.http.body_limit_bytes,
                max_upload_bytes: config.plugins.max_upload_bytes,
            },
            skip_image_policy: false,
        });
        let addr = config.http.addr.socket_addr();
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self {
            listener,
            state,
            grace: Duration::from_secs(config.http.shutdown_grace_secs),
            sync_interval: Duration::from_millis(config.plugins.sync_interval_ms),
        })
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

    /// Benchmarks only: serve `POST /v1/apps` without asking the image-policy plugin, as the
    /// baseline its cost is measured against.
    #[doc(hidden)]
    pub fn skip_image_policy(mut self) -> Self {
        self.state.get_mut().expect("the state is not shared before the server runs").skip_image_policy =
            true;
        self
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish.
    pub async fn run(self) -> std::io::Result<()> {
        // Handlers first: a signal that arrives once we say we listen must stop us gracefully.
        let shutdown = shutdown_signal()?;
        self.run_until(shutdown).await
    }

    /// Serves until `shutdown` completes; in-flight requests get the grace period to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let store = self.state.store.clone();
        let plugin_sync = self.state.plugins.spawn_sync();
        let key_expiry = billing::spawn_key_expiry(self.state.store.clone(), self.state.billing.idempotency);
        let follower = replicas::spawn_follower(self.state.clone(), self.sync_interval);
        tracing::info!(addr = %self.local_addr(), database = self.state.store.engine(), "kubeop manager listening");
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
        plugin_sync.abort();
        key_expiry.abort();
        follower.abort();
        store.close().await;
        result
    }
}

/// Opens the configured database (without migrating it).
pub async fn open_store(config: &Config, metrics: &Metrics) -> anyhow::Result<Store> {
    let url = config.database_url();
    let options = StoreOptions {
        max_connections: config.db.max_connections,
        acquire_timeout: Duration::from_secs(config.db.acquire_timeout_secs),
        read_cache_ttl: Duration::from_millis(config.db.read_cache_ttl_ms),
        read_cache_capacity: config.db.read_cache_capacity,
    };
    Store::connect(&url, &options, metrics.db_seconds.clone())
        .await
        .with_context(|| format!("cannot open the database at {}", config::redacted_url(&url)))
}

/// Installs the SIGTERM and SIGINT handlers now; the future completes on either signal.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
