//! The webhook's serving certificate. The API server calls the webhook over TLS and trusts the
//! CA in the webhook configurations' `caBundle`. Without cert-manager, kubeop makes its own: a CA
//! and a serving certificate for the Service's DNS names, kept in one Secret (so every replica
//! serves the same one, and any replica can renew it with the CA's key), renewed some time before
//! it expires; the CA goes into every webhook of both configurations.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Datelike, Duration, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;

/// When the serving certificate and the CA stop being valid, as annotations on the Secret (so a
/// replica needs no X.509 parser to know when to renew).
const NOT_AFTER: &str = "paas.kubeop.io/not-after";
const CA_NOT_AFTER: &str = "paas.kubeop.io/ca-not-after";
const SERVING_DAYS: i64 = 365;
const CA_DAYS: i64 = 10 * 365;
/// Renewed this long before it expires.
const RENEW_BEFORE_DAYS: i64 = 30;

/// Where the certificates live and whom they are for.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The namespace of the Secret and the Service.
    pub namespace: String,
    pub secret: String,
    pub service: String,
    /// The webhook configurations (validating and mutating) that get the CA.
    pub webhook_configuration: String,
}

impl Identity {
    /// The names the API server uses to reach the Service.
    pub fn dns_names(&self) -> Vec<String> {
        let (service, namespace) = (&self.service, &self.namespace);
        vec![
            service.clone(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ]
    }
}

/// PEM text of the CA and of the serving certificate and key.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// The certificates in the Secret, made (or renewed) first when they are missing, unreadable or
/// expire within 30 days. Two replicas racing: one creates or replaces the Secret, the other's
/// write conflicts and it reads the winner's.
pub async fn ensure(
    client: &kube::Client,
    identity: &Identity,
    now: DateTime<Utc>,
) -> anyhow::Result<Certificates> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &identity.namespace);
    for _ in 0..3 {
        let existing = secrets.get_opt(&identity.secret).await.context("reading the certificate Secret")?;
        let stored = existing.as_ref().and_then(read);
        if let Some((certificates, _)) = &stored
            && certificates.not_after - Duration::days(RENEW_BEFORE_DAYS) > now
        {
            return Ok(certificates.clone());
        }
        // Keep a CA that is still good for longer than the new serving certificate, so the
        // bundle the API server trusts does not change on every renewal.
        let ca =
            stored.and_then(|(_, ca)| ca).filter(|ca| ca.not_after > now + Duration::days(SERVING_DAYS + 1));
        let (certificates, ca) = generate(identity, ca, now)?;
        let secret = secret(identity, &certificates, &ca, existing.as_ref());
        let written = match existing {
            None => secrets.create(&PostParams::default(), &secret).await,
            Some(_) => secrets.replace(&identity.secret, &PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(secret = %identity.secret, not_after = %certificates.not_after, "webhook certificate issued");
                return Ok(certificates);
            }
            // Another replica wrote it first: use theirs.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(error).context("writing the certificate Secret"),
        }
    }
    anyhow::bail!("the certificate Secret keeps changing under us")
}

/// The CA's certificate and key, to sign with.
#[derive(Clone)]
struct Ca {
    cert_pem: String,
    key_pem: String,
    not_after: DateTime<Utc>,
}

fn read(secret: &Secret) -> Option<(Certificates, Option<Ca>)> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    let annotation = |key: &str| {
        secret.metadata.annotations.as_ref()?.get(key).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    let certificates = Certificates {
        ca_pem: text("ca.crt")?,
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
        not_after: annotation(NOT_AFTER)?.with_timezone(&Utc),
    };
    let ca = (|| {
        Some(Ca {
            cert_pem: text("ca.crt")?,
            key_pem: text("ca.key")?,
            not_after: annotation(CA_NOT_AFTER)?.with_timezone(&Utc),
        })
    })();
    Some((certificates, ca))
}

/// The end of a validity of `days` from `now`, as a whole date (rcgen takes a calendar date;
/// the annotation records the same one).
fn until(days: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    (now + Duration::days(days)).date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

fn date(at: DateTime<Utc>) -> rcgen::CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(at.year(), at.month() as u8, at.day() as u8);
    params
}

/// The CA's parameters: the same every time, so a CA kept in the Secret can sign again with its
/// stored key (the issuer name and key identifier come out the same).
fn ca_params(not_after: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<CertificateParams> {
    let mut params = date(now);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "kubeop-admission-ca");
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_after = rcgen::date_time_ymd(not_after.year(), not_after.month() as u8, not_after.day() as u8);
    Ok(params)
}

fn generate(identity: &Identity, ca: Option<Ca>, now: DateTime<Utc>) -> anyhow::Result<(Certificates, Ca)> {
    let (issuer, ca) = match ca {
        Some(ca) => {
            let key = KeyPair::from_pem(&ca.key_pem).context("the CA key in the Secret")?;
            (Issuer::new(ca_params(ca.not_after, now)?, key), ca)
        }
        None => {
            let not_after = until(CA_DAYS, now);
            let params = ca_params(not_after, now)?;
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            let ca = Ca { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_after };
            (Issuer::new(params, key), ca)
        }
    };
    let mut params = date(now);
    params.subject_alt_names = identity
        .dns_names()
        .into_iter()
        .map(|name| Ok(rcgen::SanType::DnsName(name.try_into()?)))
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{}.{}.svc", identity.service, identity.namespace));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let not_after = until(SERVING_DAYS, now);
    params.not_after = rcgen::date_time_ymd(not_after.year(), not_after.month() as u8, not_after.day() as u8);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let certificates = Certificates {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    };
    Ok((certificates, ca))
}

fn secret(identity: &Identity, certificates: &Certificates, ca: &Ca, existing: Option<&Secret>) -> Secret {
    let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
    let data = BTreeMap::from([
        ("ca.crt".to_owned(), bytes(&certificates.ca_pem)),
        ("ca.key".to_owned(), bytes(&ca.key_pem)),
        ("tls.crt".to_owned(), bytes(&certificates.cert_pem)),
        ("tls.key".to_owned(), bytes(&certificates.key_pem)),
    ]);
    let annotations = BTreeMap::from([
        (NOT_AFTER.to_owned(), certificates.not_after.to_rfc3339()),
        (CA_NOT_AFTER.to_owned(), ca.not_after.to_rfc3339()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(identity.secret.clone()),
            namespace: Some(identity.namespace.clone()),
            // A replace carries the version it read: a concurrent renewal conflicts (409).
            resource_version: existing.and_then(|s| s.metadata.resource_version.clone()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/part-of".to_owned(), "kubeop".to_owned()),
                ("app.kubernetes.io/managed-by".to_owned(), "kubeop".to_owned()),
            ])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Writes the CA into every webhook of both configurations, unless it is there already; answers
/// how many webhooks changed.
pub async fn inject_ca_bundle(
    client: &kube::Client,
    identity: &Identity,
    ca_pem: &str,
) -> anyhow::Result<usize> {
    let bundle = ByteString(ca_pem.as_bytes().to_vec());
    let name = &identity.webhook_configuration;
    let validating = inject(Api::<ValidatingWebhookConfiguration>::all(client.clone()), name, &bundle, |c| {
        c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect()
    });
    let mutating = inject(Api::<MutatingWebhookConfiguration>::all(client.clone()), name, &bundle, |c| {
        c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect()
    });
    Ok(validating.await? + mutating.await?)
}

/// One configuration: a merge patch of its webhook list with only `caBundle` changed, carrying
/// the resourceVersion it was read at, so a concurrent edit makes it fail (409) rather than be
/// overwritten.
async fn inject<K>(
    api: Api<K>,
    name: &str,
    bundle: &ByteString,
    client_configs: impl Fn(&mut K) -> Vec<&mut WebhookClientConfig>,
) -> anyhow::Result<usize>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::Serialize
        + for<'de> k8s_openapi::serde::Deserialize<'de>,
{
    let Some(mut config) =
        api.get_opt(name).await.with_context(|| format!("reading webhook configuration {name}"))?
    else {
        return Ok(0);
    };
    let stale = client_configs(&mut config)
        .into_iter()
        .filter(|c| c.ca_bundle.as_ref() != Some(bundle))
        .map(|c| c.ca_bundle = Some(bundle.clone()))
        .count();
    if stale > 0 {
        let webhooks = serde_json::to_value(&config)?["webhooks"].take();
        let patch =
            json!({"metadata": {"resourceVersion": config.meta().resource_version}, "webhooks": webhooks});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("writing caBundle into {name}"))?;
    }
    Ok(stale)
}
