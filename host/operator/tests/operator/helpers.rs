//! A fake cluster with kubeop's CRDs, the operator running in-process against it, and the
//! objects the manager writes (shaped as host/kube/src/resources.rs builds them).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use kubeop_crds::platform::{
    POLICY_CONFIG_MAP, POLICY_KEY, PolicyDocument, QuotaMaxDocument, SYSTEM_NAMESPACE,
};
use kubeop_crds::{App, AppSpec, EnvVar, Project, ProjectSpec, Tenant, TenantSpec, labels};
use kubeop_fake_kube::FakeKube;
use kubeop_operator::{Metrics, Settings};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CRD: &str = "paas.kubeop.io/v1alpha1";
/// How the manager's writes are attributed (its default field manager).
const MANAGER: &str = "kubeop";
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub fake: FakeKube,
    pub client: kube::Client,
}

impl Cluster {
    /// A fake cluster with kubeop's CRDs and, when given, the platform policy ConfigMap (what
    /// the bootstrap and the manager do before the operator starts).
    pub async fn new(policy: Option<&PolicyDocument>) -> Cluster {
        let fake = FakeKube::new();
        let client = fake.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in kubeop_crds::definitions() {
            crds.create(&PostParams::default(), &crd).await.expect("the fake takes kubeop's CRDs");
        }
        let cluster = Cluster { fake, client };
        cluster.apply(&Namespace { metadata: named(SYSTEM_NAMESPACE, None), ..Namespace::default() }).await;
        if let Some(policy) = policy {
            cluster.set_policy(policy).await;
        }
        cluster
    }

    /// Server-side apply of a cluster-scoped object, as the manager does it.
    pub async fn apply<K>(&self, object: &K) -> K
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        manager_apply(Api::all(self.client.clone()), object).await
    }

    /// Server-side apply of a namespaced object, as the manager does it.
    pub async fn apply_in<K>(&self, object: &K) -> K
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let namespace = object.meta().namespace.as_deref().expect("a namespaced object names its namespace");
        manager_apply(Api::namespaced(self.client.clone(), namespace), object).await
    }

    pub async fn set_policy(&self, policy: &PolicyDocument) {
        let data = BTreeMap::from([(POLICY_KEY.to_owned(), serde_json::to_string(policy).unwrap())]);
        let config_map = ConfigMap {
            metadata: named(POLICY_CONFIG_MAP, Some(SYSTEM_NAMESPACE)),
            data: Some(data),
            ..ConfigMap::default()
        };
        self.apply_in(&config_map).await;
    }

    /// The stored object, as `kubectl get -o json` shows it.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.fake.object(api_version, plural, namespace, name)
    }

    /// Polls an object until `check` holds for it; on timeout shows what it last was.
    pub async fn wait_for(
        &self,
        (api_version, plural, namespace, name): (&str, &str, Option<&str>, &str),
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let object = self.object(api_version, plural, namespace, name);
            match object {
                Some(object) if check(&object) => return object,
                last if started.elapsed() > DEADLINE => {
                    panic!(
                        "timed out waiting for {what}; {plural} {name} is {:#}",
                        last.unwrap_or(Value::Null)
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Polls until an object is gone.
    pub async fn wait_gone(&self, (api_version, plural, namespace, name): (&str, &str, Option<&str>, &str)) {
        eventually(&format!("{plural} {name} to be gone"), || {
            self.object(api_version, plural, namespace, name).is_none().then_some(())
        })
        .await
    }
}

async fn manager_apply<K>(api: Api<K>, object: &K) -> K
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    api.patch(&object.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(object))
        .await
        .unwrap_or_else(|error| panic!("applying {} {}: {error}", K::kind(&()), object.name_any()))
}

/// Polls `check` every 50 ms until it answers something, for at most 20 seconds.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator running in-process until `stop`.
pub struct Operator {
    pub ready: Arc<AtomicBool>,
    pub registry: prometheus::Registry,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    /// Starts the operator and waits until it reports ready.
    pub async fn start(cluster: &Cluster) -> Operator {
        let settings = Settings {
            // Quick retries keep the failure test short.
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..Settings::default()
        };
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry);
        let ready = Arc::new(AtomicBool::new(false));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kubeop_operator::run(
            cluster.client.clone(),
            settings,
            metrics,
            ready.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let operator = Operator { ready, registry, shutdown, task };
        eventually("the operator to be ready", || operator.ready.load(Ordering::SeqCst).then_some(())).await;
        operator
    }

    /// Signals shutdown and waits for `run` to return; answers whether it returned Ok.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        let result =
            tokio::time::timeout(DEADLINE, self.task).await.expect("the operator stops").expect("no panic");
        assert!(!self.ready.load(Ordering::SeqCst), "not ready once stopped");
        result
    }

    /// The sum of a metric's samples whose labels include `labels`, as /metrics shows them
    /// (a histogram's `_count` for how many were observed).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &self.registry.gather(), &mut text)
            .unwrap();
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
            .filter(|line| labels.iter().all(|(key, value)| line.contains(&format!("{key}=\"{value}\""))))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

pub fn named(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..ObjectMeta::default() }
}

fn id_labels(ids: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    let mut labels: BTreeMap<String, String> =
        ids.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    Some(labels)
}

/// Database ids as the manager has them; objects are named after them with `-` for `_`.
pub struct Ids {
    pub tenant: &'static str,
    pub project: &'static str,
    pub namespace: &'static str,
}

pub const ACME_WEB: Ids = Ids { tenant: "t_01jacme", project: "p_01jweb", namespace: "kubeop-acme-web" };

pub fn object_name(id: &str) -> String {
    id.replace('_', "-")
}

pub fn tenant(ids: &Ids) -> Tenant {
    let mut tenant = Tenant::new(&object_name(ids.tenant), TenantSpec { name: "acme".into() });
    tenant.metadata.labels = id_labels(&[(labels::TENANT_ID, ids.tenant)]);
    tenant
}

/// The namespace the manager creates first (credentials need it before the operator runs).
pub fn manager_namespace(ids: &Ids) -> Namespace {
    let mut namespace = Namespace { metadata: named(ids.namespace, None), ..Namespace::default() };
    namespace.metadata.labels =
        id_labels(&[(labels::TENANT_ID, ids.tenant), (labels::PROJECT_ID, ids.project)]);
    namespace
}

pub fn project(ids: &Ids, name: &str) -> Project {
    let spec = ProjectSpec {
        tenant_ref: object_name(ids.tenant),
        name: name.into(),
        namespace: ids.namespace.into(),
    };
    let mut project = Project::new(&object_name(ids.project), spec);
    project.metadata.labels =
        id_labels(&[(labels::TENANT_ID, ids.tenant), (labels::PROJECT_ID, ids.project)]);
    project
}

pub fn app(ids: &Ids, id: &str, name: &str, host: Option<&str>) -> App {
    let spec = AppSpec {
        name: name.into(),
        project_ref: object_name(ids.project),
        image: "docker.io/library/nginx:1.27".into(),
        host: host.map(Into::into),
        replicas: Some(2),
        port: Some(3000),
        env: vec![EnvVar { name: "MODE".into(), value: "production".into() }],
        resources: None,
    };
    let mut app = App::new(&object_name(id), spec);
    app.metadata.namespace = Some(ids.namespace.into());
    app.metadata.labels = id_labels(&[
        (labels::TENANT_ID, ids.tenant),
        (labels::PROJECT_ID, ids.project),
        (labels::APP_ID, id),
    ]);
    app
}

pub fn policy(cpu: &str, memory: &str, egress: &[&str]) -> PolicyDocument {
    PolicyDocument {
        image_allowlist: vec!["docker.io".into()],
        egress_baseline: egress.iter().map(|c| (*c).to_owned()).collect(),
        quota_max: QuotaMaxDocument { requests_cpu: Some(cpu.into()), requests_memory: Some(memory.into()) },
        ..PolicyDocument::default()
    }
}

/// A tenant, its project (namespace made by the manager first) and an app with a host, all as
/// the manager writes them; waits until the operator has made them Ready (the app's Deployment
/// applied). Answers the app's object name.
pub async fn tenant_project_and_app(cluster: &Cluster) -> String {
    cluster.apply(&tenant(&ACME_WEB)).await;
    cluster.apply(&manager_namespace(&ACME_WEB)).await;
    cluster.apply(&project(&ACME_WEB, "web")).await;
    let app = cluster.apply_in(&app(&ACME_WEB, "a_01jshop", "shop", Some("shop.example.com"))).await;
    let name = app.name_any();
    cluster
        .wait_for(("apps/v1", "deployments", Some(ACME_WEB.namespace), &name), "the app's Deployment", |_| {
            true
        })
        .await;
    cluster
        .wait_for((CRD, "projects", None, &object_name(ACME_WEB.project)), "the Project to be Ready", |p| {
            ready(p) == Some("True")
        })
        .await;
    name
}

/// The status of an object's Ready condition.
pub fn ready(object: &Value) -> Option<&str> {
    condition(object, "Ready").and_then(|c| c["status"].as_str())
}

pub fn condition<'v>(object: &'v Value, type_: &str) -> Option<&'v Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}
