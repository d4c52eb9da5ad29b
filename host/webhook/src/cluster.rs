//! What the webhook knows of its cluster, from watches: who owns each kubeop namespace (its
//! labels), which hosts Ingresses and HTTPRoutes already serve, and the platform policy in the
//! `kubeop-policy` ConfigMap. Reviews read these in memory; nothing is asked of the API server
//! while the API server waits for an answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use kubeop_core::{AdmissionPolicy, PlatformPolicy, Quantity, QuotaMax};
use kubeop_crds::labels;
use kubeop_crds::platform::{POLICY_CONFIG_MAP, POLICY_KEY, PolicyDocument, SYSTEM_NAMESPACE};
use kubeop_plugins::HostClaim;

use crate::review::{Context, Review, hosts_overlap, route_hosts};

/// The watched state. Cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    namespaces: Store<Namespace>,
    ingresses: Store<Ingress>,
    routes: Store<DynamicObject>,
    policy: Arc<ArcSwap<PlatformPolicy>>,
    policy_read: Arc<AtomicBool>,
    namespaces_read: Arc<AtomicBool>,
    ingresses_read: Arc<AtomicBool>,
}

fn http_route() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"))
}

impl ClusterView {
    /// Starts the watches. `fallback` is the policy in force until the ConfigMap is read (the
    /// configuration's), and whenever it is missing.
    pub fn watch(client: kube::Client, fallback: PlatformPolicy) -> Self {
        let namespaces = reflect(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(labels::PROJECT_ID),
            "namespaces",
        );
        let ingresses = reflect(Api::<Ingress>::all(client.clone()), watcher::Config::default(), "ingresses");
        let routes = {
            let writer = reflector::store::Writer::new(http_route());
            let reader = writer.as_reader();
            let api = Api::<DynamicObject>::all_with(client.clone(), &http_route());
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .applied_objects();
            tokio::spawn(drain(stream, "httproutes"));
            reader
        };
        let view = Self {
            namespaces_read: once_ready(namespaces.clone()),
            ingresses_read: once_ready(ingresses.clone()),
            namespaces,
            ingresses,
            routes,
            policy: Arc::new(ArcSwap::from_pointee(fallback.clone())),
            policy_read: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(follow_policy(client, view.policy.clone(), view.policy_read.clone(), fallback));
        view
    }

    /// Whether the namespaces, Ingresses and the policy have been read once (HTTPRoutes are not
    /// waited for: a cluster without the Gateway API has none).
    pub fn ready(&self) -> bool {
        [&self.policy_read, &self.namespaces_read, &self.ingresses_read]
            .iter()
            .all(|read| read.load(Ordering::Acquire))
    }

    pub fn policy(&self) -> Arc<PlatformPolicy> {
        self.policy.load_full()
    }

    /// The tenant and project owning `namespace`, from its labels.
    pub fn owner(&self, namespace: &str) -> (Option<String>, Option<String>) {
        let key = reflector::ObjectRef::<Namespace>::new(namespace);
        let Some(found) = self.namespaces.get(&key) else { return (None, None) };
        let labels = found.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).filter(|v| !v.is_empty()).cloned();
        (label(labels::TENANT_ID), label(labels::PROJECT_ID))
    }

    /// The context of a review: the namespace's owner and the claims on the hosts it names.
    pub fn context(&self, review: &Review) -> Context {
        let (tenant, project) = review.namespace().map(|ns| self.owner(ns)).unwrap_or_default();
        let hosts = review.hosts();
        let claims = if hosts.is_empty() {
            Vec::new()
        } else {
            let own = (review.namespace().unwrap_or_default(), review.object_ref());
            self.claims(&hosts, (own.0, own.1.as_str()))
        };
        Context { tenant, project, claims }
    }

    /// Every Ingress or HTTPRoute host overlapping one of `hosts`, except the object `own`
    /// (namespace, `Kind/name`) itself.
    pub fn claims(&self, hosts: &[String], own: (&str, &str)) -> Vec<HostClaim> {
        let mut claims = Vec::new();
        let mut consider = |namespace: &str, object: String, served: Vec<String>| {
            if (namespace, object.as_str()) == own {
                return;
            }
            for host in served {
                if hosts.iter().any(|wanted| hosts_overlap(wanted, &host)) {
                    claims.push(HostClaim {
                        host,
                        tenant: self.owner(namespace).0,
                        namespace: namespace.to_owned(),
                        object: object.clone(),
                    });
                }
            }
        };
        for ingress in self.ingresses.state() {
            let namespace = ingress.metadata.namespace.as_deref().unwrap_or_default();
            let name = ingress.metadata.name.as_deref().unwrap_or_default();
            consider(namespace, format!("Ingress/{name}"), ingress_hosts(&ingress));
        }
        for route in self.routes.state() {
            let namespace = route.metadata.namespace.as_deref().unwrap_or_default();
            let name = route.metadata.name.as_deref().unwrap_or_default();
            let hosts = route_hosts("gateway.networking.k8s.io", "HTTPRoute", &route.data);
            consider(namespace, format!("HTTPRoute/{name}"), hosts);
        }
        claims
    }
}

/// The hosts an Ingress serves, as [`route_hosts`] reads them from JSON.
fn ingress_hosts(ingress: &Ingress) -> Vec<String> {
    let Some(spec) = &ingress.spec else { return Vec::new() };
    let rules = spec.rules.iter().flatten().filter_map(|rule| rule.host.clone());
    let tls = spec.tls.iter().flatten().flat_map(|tls| tls.hosts.clone().unwrap_or_default());
    let mut hosts: Vec<String> = rules
        .chain(tls)
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A flag raised once `store` has its first full listing.
fn once_ready<K>(store: Store<K>) -> Arc<AtomicBool>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    let flag = Arc::new(AtomicBool::new(false));
    let raised = flag.clone();
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            raised.store(true, Ordering::Release);
        }
    });
    flag
}

fn reflect<K>(api: Api<K>, config: watcher::Config, what: &'static str) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff().applied_objects();
    tokio::spawn(drain(stream, what));
    reader
}

async fn drain<S, T, E>(stream: S, what: &'static str)
where
    S: futures::Stream<Item = Result<T, E>> + Send,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => failing = false,
            // Logged once per outage: the watcher retries with backoff.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "watching {what} failed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// Keeps `policy` in step with the ConfigMap. A document that does not parse keeps the policy
/// in force (never the empty, permissive one); a missing ConfigMap means the fallback.
async fn follow_policy(
    client: kube::Client,
    policy: Arc<ArcSwap<PlatformPolicy>>,
    read: Arc<AtomicBool>,
    fallback: PlatformPolicy,
) {
    let api = Api::<ConfigMap>::namespaced(client, SYSTEM_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={POLICY_CONFIG_MAP}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut seen = false;
    while let Some(event) = events.next().await {
        let config_map = match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => Some(cm),
            Ok(watcher::Event::Delete(_)) => None,
            Ok(watcher::Event::Init) => {
                seen = false;
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                if !seen {
                    policy.store(Arc::new(fallback.clone()));
                }
                read.store(true, Ordering::Release);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "watching the {POLICY_CONFIG_MAP} ConfigMap failed; retrying");
                continue;
            }
        };
        seen = config_map.is_some();
        match config_map.map(|cm| parse(&cm)).unwrap_or_else(|| Ok(fallback.clone())) {
            Ok(parsed) => {
                tracing::info!("platform policy in force for admission updated");
                policy.store(Arc::new(parsed));
            }
            Err(error) => {
                tracing::error!(%error, "the {POLICY_CONFIG_MAP} ConfigMap is invalid; keeping the policy in force")
            }
        }
        read.store(true, Ordering::Release);
    }
}

/// The policy a ConfigMap holds, every entry validated as `PUT /v1/platform/policy` does.
pub fn parse(config_map: &ConfigMap) -> Result<PlatformPolicy, String> {
    let json = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(POLICY_KEY))
        .ok_or_else(|| format!("it has no {POLICY_KEY}"))?;
    let document: PolicyDocument = serde_json::from_str(json).map_err(|e| format!("{POLICY_KEY}: {e}"))?;
    let quantity = |raw: &Option<String>| raw.as_deref().map(Quantity::parse).transpose().map_err(|e| e.0);
    Ok(PlatformPolicy {
        image_allowlist: PlatformPolicy::parse_registries(&document.image_allowlist).map_err(|e| e.0)?,
        egress_baseline: PlatformPolicy::parse_cidrs(&document.egress_baseline).map_err(|e| e.0)?,
        quota_max: QuotaMax {
            requests_cpu: quantity(&document.quota_max.requests_cpu)?,
            requests_memory: quantity(&document.quota_max.requests_memory)?,
        },
        admission: AdmissionPolicy::parse(
            &document.allowed_hosts,
            &document.allowed_service_types,
            &document.audit_rules,
        )
        .map_err(|(field, why)| format!("{field}: {}", why.0))?,
    })
}
