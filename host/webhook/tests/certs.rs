//! The webhook's certificates against the project's fake API server: made once and kept in the
//! Secret, renewed before they expire under the same CA, verified the way the API server
//! verifies the webhook (the CA, the Service's DNS name), and the CA written into every webhook.

use std::sync::Arc;

use chrono::{Duration, Utc};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use kubeop_fake_kube::FakeKube;
use kubeop_webhook::certs::{self, Certificates, Identity};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn identity() -> Identity {
    Identity {
        namespace: "kubeop-system".into(),
        secret: "kubeop-admission-tls".into(),
        service: "kubeop-admission".into(),
        webhook_configuration: "kubeop-admission".into(),
    }
}

/// A fake cluster with kubeop-system and deploy/'s webhook configurations (no caBundle).
async fn cluster() -> FakeKube {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeKube::new();
    let namespaces: Api<Namespace> = Api::all(fake.client());
    let system = Namespace {
        metadata: ObjectMeta { name: Some("kubeop-system".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &system).await.unwrap();
    let text = include_str!("../../../deploy/admission/webhooks.yaml");
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        if document["kind"] == "ValidatingWebhookConfiguration" {
            let config: ValidatingWebhookConfiguration = serde_json::from_value(document).unwrap();
            Api::all(fake.client()).create(&PostParams::default(), &config).await.unwrap();
        } else {
            let config: MutatingWebhookConfiguration = serde_json::from_value(document).unwrap();
            Api::all(fake.client()).create(&PostParams::default(), &config).await.unwrap();
        }
    }
    fake
}

/// What the API server does: trust the CA, check the serving certificate for the Service's name.
fn verify(certificates: &Certificates, at: chrono::DateTime<Utc>) -> Result<(), rustls::Error> {
    verify_as(certificates, at, "kubeop-admission.kubeop-system.svc")
}

fn verify_as(
    certificates: &Certificates,
    at: chrono::DateTime<Utc>,
    host: &str,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(certificates.ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let leaf = CertificateDer::from_pem_slice(certificates.cert_pem.as_bytes()).unwrap();
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.timestamp() as u64 + 3600));
    verifier.verify_server_cert(&leaf, &[], &name, &[], now).map(drop)
}

#[tokio::test]
async fn certificates_are_made_once_kept_renewed_and_trusted() {
    let fake = cluster().await;
    let client = fake.client();
    let now = Utc::now();
    let first = certs::ensure(&client, &identity(), now).await.unwrap();
    verify(&first, now).expect("the API server would trust the webhook");
    assert!(verify_as(&first, now, "kubeop-admission.other.svc").is_err(), "only the Service's names");
    // The key matches the certificate: a TLS server can be built from them.
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(first.key_pem.as_bytes()).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap()], key)
        .expect("a matching key");
    let secret: Secret =
        Api::namespaced(client.clone(), "kubeop-system").get("kubeop-admission-tls").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);

    // Another replica, or a restart: the same certificates.
    assert_eq!(certs::ensure(&client, &identity(), now).await.unwrap(), first);
    // Within 30 days of expiry: a new serving certificate from the same CA.
    let later = first.not_after - Duration::days(10);
    let renewed = certs::ensure(&client, &identity(), later).await.unwrap();
    assert_ne!(renewed.cert_pem, first.cert_pem);
    assert_eq!(renewed.ca_pem, first.ca_pem, "the CA the API server trusts stays");
    assert!(renewed.not_after > first.not_after);
    verify(&renewed, later).expect("the renewed certificate chains to the same CA");

    // A Secret someone broke is replaced.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeop-system");
    let mut broken = secrets.get("kubeop-admission-tls").await.unwrap();
    broken.data.as_mut().unwrap().remove("tls.key");
    secrets.replace("kubeop-admission-tls", &PostParams::default(), &broken).await.unwrap();
    let repaired = certs::ensure(&client, &identity(), now).await.unwrap();
    verify(&repaired, now).unwrap();
}

#[tokio::test]
async fn the_ca_goes_into_every_webhook_once() {
    let fake = cluster().await;
    let client = fake.client();
    let certificates = certs::ensure(&client, &identity(), Utc::now()).await.unwrap();
    assert_eq!(certs::inject_ca_bundle(&client, &identity(), &certificates.ca_pem).await.unwrap(), 2);
    assert_eq!(
        certs::inject_ca_bundle(&client, &identity(), &certificates.ca_pem).await.unwrap(),
        0,
        "already there"
    );
    for plural in ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"] {
        let config =
            fake.object("admissionregistration.k8s.io/v1", plural, None, "kubeop-admission").unwrap();
        let bundle = config["webhooks"][0]["clientConfig"]["caBundle"].as_str().unwrap();
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD.decode(bundle).unwrap();
        assert_eq!(decoded, certificates.ca_pem.as_bytes());
        assert_eq!(
            config["webhooks"][0]["clientConfig"]["service"]["name"], "kubeop-admission",
            "the rest is kept"
        );
    }
}
