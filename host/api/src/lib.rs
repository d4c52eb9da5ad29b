//! The kubeop manager: its REST API (axum), authorization, billing and the replica follower.
//!
//! [`Server::build`] wires configuration, storage, plugins, auth and the HTTP API together; the
//! `kubeop` binary, the black-box tests and the benchmarks all start the manager through it.

pub mod auth;
pub mod billing;
pub mod http;
pub mod metrics;
pub mod policy;
mod replicas;
mod serve;
pub mod telemetry;
pub mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use kubeop_config::Config;
use kubeop_plugins::Plugins;
use kubeop_store::kms::Kms;
use kubeop_store::{Store, StoreOptions};

use crate::auth::Authenticator;
use crate::http::{AppState, BuildInfo, Limits, Shared};
use crate::metrics::Metrics;

/// The manager, bound to its port and ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// `None` when `kube.reconciler` is off.
    reconciler: Option<kubeop_kube::Reconciler>,
    /// The embedded operator's client and settings (`operator.embedded`).
    operator: Option<(kubeop_kube::Connected, kubeop_config::OperatorConfig)>,
    grace: Duration,
    sync_interval: Duration,
    connections: serve::ConnectionLimits,
}

impl Server {
    /// Opens and migrates the database, loads the keys and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // Settings first: a bad one stops the start before anything is opened.
        let configured_policy = policy::from_config(&config.policy)?;
        let billing = billing::Settings::from_config(&config.billing)?;
        kubeop_plugins::check_config(&config.plugins)?;
        let metrics = Metrics::new();
        let store = open_store(config, &metrics).await?;
        store.migrate().await.context("migrating the database")?;
        let signing_key = config.signing_key()?;
        let kms = kms_from_config(config)?;
        if kms.is_none() {
            tracing::warn!("no KMS master key (KUBEOP_KMS_MASTER_KEY): /readyz answers 503");
        }
        let policy = policy::PolicyState::load(configured_policy.clone(), &store).await?;
        let clusters = Arc::new(kubeop_kube::Clusters::new(store.clone(), kms.clone(), &config.kube));
        let reconciler_metrics = kubeop_kube::ReconcilerMetrics::new(&metrics.registry);
        let statuses = Arc::new(kubeop_kube::Statuses::new(store.clone(), clusters.clone()));
        let plugins = Plugins::start(
            &config.plugins,
            Some(config.data_dir.join("plugin-cache")),
            Arc::new(uploads::StoreUploads(store.clone())),
            metrics.plugins.clone(),
        )
        .await?;
        let limits = Limits {
            max_token_ttl: Duration::from_secs(u64::from(config.auth.max_token_ttl_minutes) * 60),
            body_limit_bytes: config.http.body_limit_bytes,
            request_timeout: Duration::from_millis(config.http.request_timeout_ms),
        };
        let openapi = http::served_openapi_json(&limits, &billing).into();
        let state = AppState::new(Shared {
            store,
            auth: Arc::new(Authenticator::new(
                &signing_key,
                config.auth.require,
                Duration::from_secs(u64::from(config.auth.max_token_lifetime_minutes) * 60),
            )),
            metrics,
            kms,
            clusters,
            statuses,
            kube_settings: config.kube.clone(),
            plugins,
            policy: Arc::new(policy),
            billing: Arc::new(billing),
            limits,
            build: BuildInfo::unstamped(),
            openapi,
            skip_image_policy: false,
        });
        let addr = config.http.addr.socket_addr();
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        // `operator.embedded`: the controllers in this process, against the default cluster.
        let operator = if config.operator.embedded {
            let client = state.clusters.connect(None).await.map_err(|error| {
                anyhow::anyhow!("operator.embedded needs a default cluster (kube.default): {error}")
            })?;
            Some((client, config.operator.clone()))
        } else {
            None
        };
        let reconciler = config.kube.reconciler.then(|| {
            kubeop_kube::Reconciler::new(
                state.store.clone(),
                state.clusters.clone(),
                &config.kube,
                configured_policy,
                reconciler_metrics,
            )
        });
        Ok(Self {
            listener,
            state,
            reconciler,
            operator,
            grace: Duration::from_secs(config.http.shutdown_grace_secs),
            connections: serve::ConnectionLimits {
                header_timeout: Duration::from_millis(config.http.header_timeout_ms),
                idle_timeout: Duration::from_millis(config.http.idle_timeout_ms),
                // Room for the database pool, the plugin cache and the logs besides connections.
                max_connections: serve::connection_budget(
                    config.http.max_connections,
                    config.db.max_connections as usize + 64,
                ),
            },
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

    /// Reports `build` at `/version` (the binary stamps its commit and build time).
    pub fn with_build_info(mut self, build: BuildInfo) -> Self {
        self.state.get_mut().expect("the state is not shared before the server runs").build = build;
        self
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
        let store = self.state.store.clone();
        let plugin_sync = self.state.plugins.spawn_sync();
        let key_expiry = billing::spawn_key_expiry(self.state.store.clone(), self.state.billing.idempotency);
        let followed = replicas::Followed {
            store: self.state.store.clone(),
            policy: self.state.policy.clone(),
            plugins: self.state.plugins.clone(),
        };
        let follower = replicas::spawn_follower(followed, self.sync_interval);
        tracing::info!(
            addr = %self.local_addr(),
            database = self.state.store.engine(),
            max_connections = self.connections.max_connections,
            "kubeop manager listening"
        );
        let reconciler = self.reconciler.map(|reconciler| tokio::spawn(reconciler.run()));
        let watch_every = Duration::from_millis(self.state.kube_settings.reconcile_interval_ms);
        let statuses = tokio::spawn(self.state.statuses.clone().run(watch_every));
        let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = self.operator.map(|(cluster, config)| {
            let stop = async move {
                let _ = operator_stopped.await;
            };
            kubeop_operator::process::spawn_embedded(
                cluster.client,
                &config,
                &self.state.metrics.registry,
                stop,
            )
        });
        let result =
            serve::serve(self.listener, http::app(self.state), self.connections, shutdown, self.grace).await;
        plugin_sync.abort();
        key_expiry.abort();
        follower.abort();
        statuses.abort();
        if let Some(reconciler) = reconciler {
            reconciler.abort();
        }
        if let Some(operator) = operator {
            // Its controllers stop and its lease is released, so another replica takes over now.
            let _ = stop_operator.send(());
            match tokio::time::timeout(self.grace, operator).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the embedded operator failed"),
                Err(_) => tracing::warn!("the embedded operator did not stop within the grace period"),
                _ => {}
            }
        }
        store.close().await;
        result
    }
}

/// Checks the settings whose owners live in the server's crates (policy, billing, plugin limits);
/// `Server::build` does the same before it opens anything.
pub fn check_config(config: &Config) -> Result<(), kubeop_config::ConfigError> {
    policy::from_config(&config.policy)?;
    billing::Settings::from_config(&config.billing)?;
    kubeop_plugins::check_config(&config.plugins)
}

/// The KMS of the configuration: the master key, and the previous keys for reading.
pub fn kms_from_config(config: &Config) -> anyhow::Result<Option<Kms>> {
    let bytes = |key: &kubeop_config::KmsKey| -> [u8; 32] {
        key.expose().try_into().expect("a KmsKey is checked to be 32 bytes when parsed")
    };
    let previous: Vec<[u8; 32]> = config.kms.previous_keys.iter().map(bytes).collect();
    Ok(config.kms_key()?.map(|key| Kms::new(&bytes(&key)).with_previous_keys(&previous)))
}

/// Re-seals every secret at rest under the current KMS master key (`kubeop kms rotate`), in
/// one transaction: a secret that no configured key opens fails the whole rotation, naming it.
/// Answers (re-sealed, total).
pub async fn rotate_kms(config: &Config) -> anyhow::Result<(usize, usize)> {
    let kms = kms_from_config(config)?.context("no KMS master key is configured (kms.master_key)")?;
    let store = open_store(config, &Metrics::new()).await?;
    store.migrate().await.context("migrating the database")?;
    let outcome = store
        .reseal_secrets(|id, sealed| {
            kms.rewrap(sealed, id.as_str().as_bytes()).map_err(|e| {
                anyhow::anyhow!(
                    "the kubeconfig of cluster {id} cannot be opened ({e}): add the key that sealed it \
                     to kms.previous_keys; nothing was re-sealed"
                )
            })
        })
        .await?;
    store.close().await;
    outcome
}

/// Opens the configured database (without migrating it).
pub async fn open_store(config: &Config, metrics: &Metrics) -> anyhow::Result<Store> {
    let url = config.database_url();
    let options = StoreOptions {
        max_connections: config.db.max_connections,
        acquire_timeout: Duration::from_secs(config.db.acquire_timeout_secs),
        read_cache_ttl: Duration::from_millis(config.db.read_cache_ttl_ms),
        read_cache_capacity: config.db.read_cache_capacity,
        default_cluster: config.kube.default != kubeop_config::DefaultCluster::None,
    };
    Store::connect(&url, &options, metrics.db_seconds.clone())
        .await
        .with_context(|| format!("cannot open the database at {}", kubeop_config::redacted_url(&url)))
}

/// Installs the SIGTERM and SIGINT handlers now; the future completes on either signal.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
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
