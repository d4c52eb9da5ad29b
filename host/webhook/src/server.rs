//! The HTTPS server: `/validate` and `/mutate` (AdmissionReview v1), `/healthz`, `/readyz` and
//! `/metrics`, on rustls with a certificate that can change under it (renewal, cert-manager
//! rotation) without a restart.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use kubeop_plugins::Plugins;

use crate::cluster::ClusterView;
use crate::review::{self, Endpoint, FailureMode, Outcome, Review};

/// The longest a review may take, waiting for a plugin slot included; past it the failure mode
/// answers. Below the webhook configurations' 5 s timeout, so the API server always gets our
/// answer rather than its own timeout.
const REVIEW_DEADLINE: Duration = Duration::from_secs(3);

/// A TLS handshake or a request's headers that take longer than this are dropped (a client that
/// opens connections and sends nothing must not hold them).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The serving certificate in force; replaced in place when it is renewed.
#[derive(Debug)]
pub struct Certificate(ArcSwap<CertifiedKey>);

impl Certificate {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        Ok(Self(ArcSwap::from_pointee(certified_key(cert_pem, key_pem)?)))
    }

    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        self.0.store(Arc::new(certified_key(cert_pem, key_pem)?));
        Ok(())
    }
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!chain.is_empty(), "the certificate file holds no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(CertifiedKey::from_der(chain, key, &provider)?)
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn tls_config(certificate: Arc<Certificate>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The webhook's counters, registered with the plugin host's in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    reviews: IntCounterVec,
    seconds: HistogramVec,
}

impl Metrics {
    pub fn new(registry: Registry) -> prometheus::Result<Self> {
        let reviews = IntCounterVec::new(
            Opts::new("kubeop_admission_reviews_total", "Admission reviews by endpoint and outcome"),
            &["endpoint", "outcome"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new("kubeop_admission_review_seconds", "Time to answer an admission review")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            &["endpoint"],
        )?;
        registry.register(Box::new(reviews.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(Self { registry, reviews, seconds })
    }

    /// A fresh registry with the webhook's and the plugin host's metrics.
    pub fn with_plugins() -> prometheus::Result<(Self, kubeop_plugins::PluginMetrics)> {
        let registry = Registry::new();
        let plugins = kubeop_plugins::PluginMetrics::register(
            &registry,
            &[0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
        )?;
        Ok((Self::new(registry)?, plugins))
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct Webhook {
    pub plugins: Plugins,
    pub cluster: ClusterView,
    pub failure: FailureMode,
    pub metrics: Metrics,
    pub max_review_bytes: usize,
}

impl Webhook {
    pub fn router(self) -> Router {
        let limit = self.max_review_bytes;
        Router::new()
            .route(
                "/validate",
                post(|State(w): State<Webhook>, body: Bytes| async move {
                    w.review(Endpoint::Validate, &body).await
                }),
            )
            .route(
                "/mutate",
                post(|State(w): State<Webhook>, body: Bytes| async move {
                    w.review(Endpoint::Mutate, &body).await
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }

    /// One review: always a 200 with an AdmissionReview (the API server reads the decision from
    /// it), except a body that is not one, which gets kube's "invalid" answer.
    async fn review(&self, endpoint: Endpoint, body: &[u8]) -> axum::response::Response {
        let started = Instant::now();
        let (answer, outcome) = match Review::parse(body) {
            Ok(review) => {
                let context = self.cluster.context(&review);
                let policy = self.cluster.policy();
                let decided =
                    review::decide(&review, context, &policy, &self.plugins, None, endpoint, self.failure);
                let (response, outcome) = match tokio::time::timeout(REVIEW_DEADLINE, decided).await {
                    Ok(decided) => decided,
                    Err(_) => {
                        let why = format!(
                            "no answer within {} s: too many reviews at once",
                            REVIEW_DEADLINE.as_secs()
                        );
                        review::failed(&review, &why, self.failure)
                    }
                };
                (response.into_review(), outcome)
            }
            Err(reason) => (review::invalid(reason), Outcome::Invalid),
        };
        self.metrics.reviews.with_label_values(&[endpoint.as_str(), outcome.as_str()]).inc();
        self.metrics.seconds.with_label_values(&[endpoint.as_str()]).observe(started.elapsed().as_secs_f64());
        axum::Json(answer).into_response()
    }
}

async fn readyz(State(webhook): State<Webhook>) -> impl IntoResponse {
    if webhook.cluster.ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "namespaces, ingresses or the policy not read yet")
    }
}

async fn metrics(State(webhook): State<Webhook>) -> impl IntoResponse {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&webhook.metrics.registry.gather())
        .unwrap_or_else(|error| format!("# metrics could not be encoded: {error}\n"));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Serves `router` over TLS until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    certificate: Arc<Certificate>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls_config(certificate)?);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
            builder.http2().timer(TokioTimer::new()).keep_alive_interval(Duration::from_secs(30));
            let service = TowerToHyperService::new(router);
            if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%error, "admission connection ended");
            }
        });
    }
}
