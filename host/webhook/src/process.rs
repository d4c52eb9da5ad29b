//! `kubeop admission` as a process: certificates (files or generated), the cluster watches, the
//! plugin host's sync (file, SIGHUP, database) and the HTTPS server.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;

use kubeop_config::AdmissionConfig;
use kubeop_core::PlatformPolicy;
use kubeop_plugins::Plugins;

use crate::certs::{self, Identity};
use crate::cluster::ClusterView;
use crate::review::FailureMode;
use crate::server::{self, Certificate, Metrics, Webhook};

/// How often generated certificates are checked for renewal and the CA re-injected (a webhook
/// configuration re-applied without its caBundle gets it back).
const CERT_CHECK: Duration = Duration::from_secs(600);
/// How often certificate files are checked for a change.
const FILE_CHECK: Duration = Duration::from_secs(10);

/// Runs the webhook until `shutdown`. `fallback` is the policy in force while the cluster has
/// no `kubeop-policy` ConfigMap (the configuration's).
pub async fn run(
    client: kube::Client,
    config: &AdmissionConfig,
    plugins: Plugins,
    metrics: Metrics,
    fallback: PlatformPolicy,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let failure = FailureMode::parse(&config.failure_mode).unwrap_or(FailureMode::Deny);
    let certificate = certificate(client.clone(), config).await?;
    let cluster = ClusterView::watch(client, fallback);
    let sync = plugins.spawn_sync();
    let webhook = Webhook { plugins, cluster, failure, metrics, max_review_bytes: config.max_review_bytes };
    tracing::info!(addr = %listener.local_addr()?, "kubeop admission serving");
    let served = server::serve(listener, certificate, webhook.router(), shutdown).await;
    sync.abort();
    served
}

/// The serving certificate, and a task that keeps it current.
async fn certificate(client: kube::Client, config: &AdmissionConfig) -> anyhow::Result<Arc<Certificate>> {
    if !config.cert_file.as_os_str().is_empty() {
        let (cert, key) = (config.cert_file.clone(), config.key_file.clone());
        let certificate = Arc::new(Certificate::from_pem(&read(&cert)?, &read(&key)?)?);
        tokio::spawn(follow_files(certificate.clone(), cert, key));
        return Ok(certificate);
    }
    let identity = Identity {
        namespace: config.namespace.clone(),
        secret: config.tls_secret.clone(),
        service: config.service.clone(),
        webhook_configuration: config.webhook_configuration.clone(),
    };
    let current = certs::ensure(&client, &identity, chrono::Utc::now()).await?;
    let certificate =
        Arc::new(Certificate::from_pem(current.cert_pem.as_bytes(), current.key_pem.as_bytes())?);
    inject(&client, &identity, &current.ca_pem).await;
    tokio::spawn(renew(client, identity, certificate.clone(), current));
    Ok(certificate)
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

async fn inject(client: &kube::Client, identity: &Identity, ca_pem: &str) {
    match certs::inject_ca_bundle(client, identity, ca_pem).await {
        Ok(0) => {}
        Ok(changed) => tracing::info!(changed, "CA written into the webhook configurations"),
        Err(error) => {
            tracing::warn!(%error, "cannot write the CA into the webhook configurations; retrying later")
        }
    }
}

async fn renew(
    client: kube::Client,
    identity: Identity,
    certificate: Arc<Certificate>,
    mut current: certs::Certificates,
) {
    loop {
        tokio::time::sleep(CERT_CHECK).await;
        match certs::ensure(&client, &identity, chrono::Utc::now()).await {
            Ok(latest) => {
                if latest != current {
                    match certificate.replace(latest.cert_pem.as_bytes(), latest.key_pem.as_bytes()) {
                        Ok(()) => {
                            tracing::info!(not_after = %latest.not_after, "serving certificate renewed")
                        }
                        Err(error) => tracing::error!(%error, "the renewed certificate does not load"),
                    }
                    current = latest;
                }
                inject(&client, &identity, &current.ca_pem).await;
            }
            Err(error) => tracing::warn!(%error, "cannot check the certificates; retrying later"),
        }
    }
}

async fn follow_files(certificate: Arc<Certificate>, cert: PathBuf, key: PathBuf) {
    let stamp = |path: &PathBuf| -> Option<SystemTime> { std::fs::metadata(path).ok()?.modified().ok() };
    let mut seen = (stamp(&cert), stamp(&key));
    loop {
        tokio::time::sleep(FILE_CHECK).await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        match (read(&cert), read(&key)) {
            (Ok(c), Ok(k)) => match certificate.replace(&c, &k) {
                Ok(()) => {
                    tracing::info!(file = %cert.display(), "serving certificate re-read");
                    seen = now;
                }
                // Half-written (cert-manager writes the two files one after the other): next time.
                Err(error) => tracing::warn!(%error, "the certificate files do not load yet"),
            },
            (Err(error), _) | (_, Err(error)) => tracing::warn!(%error, "cannot read the certificate files"),
        }
    }
}
