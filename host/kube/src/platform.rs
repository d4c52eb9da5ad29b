//! kubeop's own parts on a cluster: the manifests under `deploy/` (embedded in the binary, so
//! bootstrap downloads nothing), applied with server-side apply in dependency order; the status
//! of what they installed, read from the cluster; the operator's HorizontalPodAutoscaler.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::LazyLock;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Resource;
use kube::api::{Api, DeleteParams, ObjectMeta};
use serde::Serialize;
use serde::de::DeserializeOwned;

use kubeop_core::PlatformPolicy;
use kubeop_crds::platform::SYSTEM_NAMESPACE;

use crate::clusters::{Connected, apply};
use crate::error::{Call, KubeError};
use crate::resources;

/// `deploy/`'s files in `deploy/kustomization.yaml`'s order, which is the order they are
/// applied in (a test keeps the two lists the same).
pub const FILES: &[(&str, &str)] = &[
    ("crds/tenants.paas.kubeop.io.yaml", include_str!("../../../deploy/crds/tenants.paas.kubeop.io.yaml")),
    ("crds/projects.paas.kubeop.io.yaml", include_str!("../../../deploy/crds/projects.paas.kubeop.io.yaml")),
    ("crds/apps.paas.kubeop.io.yaml", include_str!("../../../deploy/crds/apps.paas.kubeop.io.yaml")),
    ("namespace.yaml", include_str!("../../../deploy/namespace.yaml")),
    ("policy-configmap.yaml", include_str!("../../../deploy/policy-configmap.yaml")),
    ("operator/rbac.yaml", include_str!("../../../deploy/operator/rbac.yaml")),
    ("operator/deployment.yaml", include_str!("../../../deploy/operator/deployment.yaml")),
    ("operator/service.yaml", include_str!("../../../deploy/operator/service.yaml")),
    ("operator/pdb.yaml", include_str!("../../../deploy/operator/pdb.yaml")),
    ("admission/rbac.yaml", include_str!("../../../deploy/admission/rbac.yaml")),
    ("admission/deployment.yaml", include_str!("../../../deploy/admission/deployment.yaml")),
    ("admission/service.yaml", include_str!("../../../deploy/admission/service.yaml")),
    ("admission/pdb.yaml", include_str!("../../../deploy/admission/pdb.yaml")),
    ("admission/webhooks.yaml", include_str!("../../../deploy/admission/webhooks.yaml")),
];

/// The optional metrics-server (not in the kustomization): `InstallMetricsServer` adds it.
pub const METRICS_SERVER: (&str, &str) =
    ("metrics-server.yaml", include_str!("../../../deploy/metrics-server.yaml"));

pub const OPERATOR: &str = "kubeop-operator";
pub const ADMISSION: &str = "kubeop-admission";
/// What a development install (`Mocks`) runs in place of kubeop's image.
pub const MOCK_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// One object of the platform, as its k8s-openapi type.
#[derive(Debug, Clone)]
pub enum PlatformObject {
    CustomResourceDefinition(CustomResourceDefinition),
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    Deployment(Deployment),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    ValidatingWebhookConfiguration(ValidatingWebhookConfiguration),
    MutatingWebhookConfiguration(MutatingWebhookConfiguration),
    APIService(APIService),
}

/// Runs `$body` with `$object` bound to the typed value of any variant.
macro_rules! each_variant {
    ($value:expr, $object:ident => $body:expr) => {
        match $value {
            PlatformObject::CustomResourceDefinition($object) => $body,
            PlatformObject::Namespace($object) => $body,
            PlatformObject::ConfigMap($object) => $body,
            PlatformObject::ServiceAccount($object) => $body,
            PlatformObject::ClusterRole($object) => $body,
            PlatformObject::ClusterRoleBinding($object) => $body,
            PlatformObject::Role($object) => $body,
            PlatformObject::RoleBinding($object) => $body,
            PlatformObject::Deployment($object) => $body,
            PlatformObject::Service($object) => $body,
            PlatformObject::PodDisruptionBudget($object) => $body,
            PlatformObject::ValidatingWebhookConfiguration($object) => $body,
            PlatformObject::MutatingWebhookConfiguration($object) => $body,
            PlatformObject::APIService($object) => $body,
        }
    };
}

impl PlatformObject {
    /// A YAML document's object, by its `apiVersion` and `kind`.
    pub fn parse(value: serde_json::Value) -> Result<Self, String> {
        fn typed<K: Resource<DynamicType = ()> + DeserializeOwned>(
            value: serde_json::Value,
        ) -> Result<K, String> {
            serde_json::from_value(value).map_err(|e| format!("not a valid {}: {e}", K::kind(&())))
        }
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        Ok(match (api_version.as_str(), kind.as_str()) {
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                PlatformObject::CustomResourceDefinition(typed(value)?)
            }
            ("v1", "Namespace") => PlatformObject::Namespace(typed(value)?),
            ("v1", "ConfigMap") => PlatformObject::ConfigMap(typed(value)?),
            ("v1", "ServiceAccount") => PlatformObject::ServiceAccount(typed(value)?),
            ("v1", "Service") => PlatformObject::Service(typed(value)?),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => PlatformObject::ClusterRole(typed(value)?),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                PlatformObject::ClusterRoleBinding(typed(value)?)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => PlatformObject::Role(typed(value)?),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => PlatformObject::RoleBinding(typed(value)?),
            ("apps/v1", "Deployment") => PlatformObject::Deployment(typed(value)?),
            ("policy/v1", "PodDisruptionBudget") => PlatformObject::PodDisruptionBudget(typed(value)?),
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                PlatformObject::ValidatingWebhookConfiguration(typed(value)?)
            }
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                PlatformObject::MutatingWebhookConfiguration(typed(value)?)
            }
            ("apiregistration.k8s.io/v1", "APIService") => PlatformObject::APIService(typed(value)?),
            _ => return Err(format!("kubeop does not install {kind} objects ({api_version})")),
        })
    }

    pub fn kind(&self) -> String {
        each_variant!(self, object => kind_of(object))
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each_variant!(self, object => object.meta())
    }
}

fn kind_of<K: Resource<DynamicType = ()>>(_: &K) -> String {
    K::kind(&()).into_owned()
}

/// Every object of one manifest file, in order.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<PlatformObject>, String> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("deploy/{file} is not valid YAML: {e}"))?;
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .map(|document| PlatformObject::parse(document).map_err(|e| format!("deploy/{file}: {e}")))
        .collect()
}

/// The embedded manifests, parsed once (a test proves they parse).
static MANIFESTS: LazyLock<Vec<PlatformObject>> = LazyLock::new(|| {
    FILES
        .iter()
        .flat_map(|(file, text)| parse_file(file, text).expect("the embedded manifests parse (tested)"))
        .collect()
});
static METRICS_SERVER_OBJECTS: LazyLock<Vec<PlatformObject>> = LazyLock::new(|| {
    parse_file(METRICS_SERVER.0, METRICS_SERVER.1)
        .expect("the embedded metrics-server manifest parses (tested)")
});

/// `kubeop-system` as `deploy/namespace.yaml` has it (the reconciler applies it before the
/// policy ConfigMap with the same field manager, so it must be the same object).
pub fn system_namespace() -> Namespace {
    MANIFESTS
        .iter()
        .find_map(|object| match object {
            PlatformObject::Namespace(namespace)
                if namespace.metadata.name.as_deref() == Some(SYSTEM_NAMESPACE) =>
            {
                Some(namespace.clone())
            }
            _ => None,
        })
        .expect("deploy/namespace.yaml defines kubeop-system (tested)")
}

/// How to install the platform.
#[derive(Debug, Clone)]
pub struct Install {
    /// The kubeop image of the operator and admission Deployments.
    pub image: String,
    pub image_pull_policy: String,
    /// The webhook configurations' failure policy (`Fail` or `Ignore`).
    pub webhook_failure_policy: String,
    pub metrics_server: bool,
    /// A development install: the Deployments run [`MOCK_IMAGE`] (so the cluster has the
    /// platform's shape without kubeop's image) and no webhook configurations are written
    /// (nothing would answer them, and a `Fail` webhook nobody answers blocks every write).
    pub mocks: bool,
    /// The platform policy in force: the `kubeop-policy` ConfigMap carries it, not the
    /// manifest's empty default.
    pub policy: PlatformPolicy,
}

/// The objects `install` applies, in order, with its settings in them.
pub fn objects(install: &Install) -> Vec<PlatformObject> {
    let extra = if install.metrics_server { METRICS_SERVER_OBJECTS.as_slice() } else { &[] };
    MANIFESTS
        .iter()
        .chain(extra)
        .filter_map(|object| {
            let mut object = object.clone();
            match &mut object {
                PlatformObject::Deployment(deployment) if is_kubeop_component(&deployment.metadata) => {
                    set_image(deployment, install)
                }
                PlatformObject::ValidatingWebhookConfiguration(_)
                | PlatformObject::MutatingWebhookConfiguration(_)
                    if install.mocks =>
                {
                    return None;
                }
                PlatformObject::ValidatingWebhookConfiguration(config) => {
                    for webhook in config.webhooks.iter_mut().flatten() {
                        webhook.failure_policy = Some(install.webhook_failure_policy.clone());
                    }
                }
                PlatformObject::MutatingWebhookConfiguration(config) => {
                    for webhook in config.webhooks.iter_mut().flatten() {
                        webhook.failure_policy = Some(install.webhook_failure_policy.clone());
                    }
                }
                PlatformObject::ConfigMap(config_map)
                    if config_map.metadata.name.as_deref()
                        == Some(kubeop_crds::platform::POLICY_CONFIG_MAP) =>
                {
                    *config_map = resources::policy_config_map(&install.policy);
                }
                _ => {}
            }
            Some(object)
        })
        .collect()
}

fn is_kubeop_component(meta: &ObjectMeta) -> bool {
    matches!(meta.name.as_deref(), Some(OPERATOR | ADMISSION))
        && meta.namespace.as_deref() == Some(SYSTEM_NAMESPACE)
}

fn set_image(deployment: &mut Deployment, install: &Install) {
    let Some(pod) = deployment.spec.as_mut().and_then(|spec| spec.template.spec.as_mut()) else { return };
    for container in &mut pod.containers {
        container.image_pull_policy = Some(install.image_pull_policy.clone());
        if install.mocks {
            // The stand-in serves nothing: no command of kubeop's, no probes to fail.
            container.image = Some(MOCK_IMAGE.into());
            container.args = None;
            container.readiness_probe = None;
            container.liveness_probe = None;
        } else {
            container.image = Some(install.image.clone());
        }
    }
}

/// What bootstrap did to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    #[schema(example = "Deployment")]
    pub kind: String,
    #[schema(example = "kubeop-operator")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "kubeop-system")]
    pub namespace: Option<String>,
    /// `created`, `configured` (it changed) or `unchanged`.
    #[schema(example = "created")]
    pub result: String,
}

/// Applies `objects` in order, each with server-side apply; stops at the first failure (what
/// came before it stays applied, and applying again completes the rest).
pub async fn bootstrap(
    connected: &Connected,
    objects: &[PlatformObject],
    field_manager: &str,
) -> Result<Vec<Applied>, KubeError> {
    let mut applied = Vec::with_capacity(objects.len());
    let (all, fm) = (|| connected.client.clone(), field_manager);
    for object in objects {
        use PlatformObject as P;
        let result = match object {
            P::CustomResourceDefinition(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::Namespace(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::ClusterRole(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::ClusterRoleBinding(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::ValidatingWebhookConfiguration(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::MutatingWebhookConfiguration(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::APIService(o) => apply_reporting(connected, Api::all(all()), o, fm).await,
            P::ConfigMap(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::ServiceAccount(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::Role(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::RoleBinding(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::Deployment(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::Service(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
            P::PodDisruptionBudget(o) => apply_reporting(connected, namespaced(connected, o), o, fm).await,
        }?;
        let meta = object.metadata();
        applied.push(Applied {
            kind: object.kind(),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone(),
            result: result.into(),
        });
    }
    Ok(applied)
}

/// The API of a namespaced object, in its namespace.
fn namespaced<K>(connected: &Connected, object: &K) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    Api::namespaced(connected.client.clone(), object.meta().namespace.as_deref().unwrap_or_default())
}

/// Applies one object and says whether that created, changed or left it as it was (by its
/// resourceVersion, which only moves when the object changes).
async fn apply_reporting<K>(
    connected: &Connected,
    api: Api<K>,
    object: &K,
    field_manager: &str,
) -> Result<&'static str, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let before = api.get_opt(&name).await.map_err(|e| {
        let resource = format!("{} {name}", K::plural(&()));
        KubeError::from_kube(e, Call { cluster: &connected.label(), verb: "get", resource: &resource })
    })?;
    let after = apply(connected, api, object, field_manager).await?;
    Ok(match before {
        None => "created",
        Some(before) if before.meta().resource_version == after.meta().resource_version => "unchanged",
        Some(_) => "configured",
    })
}

/// An API of `kubeop-system`.
fn system<K>(connected: &Connected) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    Api::namespaced(connected.client.clone(), SYSTEM_NAMESPACE)
}

/// What `GET /v1/platform/status` reports, read from the cluster.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlatformStatus {
    /// The operator Deployment has available replicas.
    pub operator: bool,
    /// The admission Deployment has available replicas.
    pub admission: bool,
    /// Every webhook of both webhook configurations carries a CA bundle.
    #[serde(rename = "webhookCABundle")]
    pub webhook_ca_bundle: bool,
    /// Why each `false` is false.
    pub problems: Vec<String>,
}

pub async fn status(connected: &Connected) -> Result<PlatformStatus, KubeError> {
    let mut problems = Vec::new();
    let operator = deployment_available(connected, OPERATOR, &mut problems).await?;
    let admission = deployment_available(connected, ADMISSION, &mut problems).await?;
    let validating: Option<ValidatingWebhookConfiguration> =
        read(connected, Api::all(connected.client.clone()), ADMISSION).await?;
    let mutating: Option<MutatingWebhookConfiguration> =
        read(connected, Api::all(connected.client.clone()), ADMISSION).await?;
    let mut bundles = |kind: &str, found: Option<Vec<Option<k8s_openapi::ByteString>>>| match found {
        None => {
            problems.push(format!("{kind} {ADMISSION} is not installed"));
            false
        }
        Some(bundles) if bundles.is_empty() => {
            problems.push(format!("{kind} {ADMISSION} has no webhooks"));
            false
        }
        Some(bundles) => {
            let missing = bundles.iter().filter(|b| b.as_ref().is_none_or(|b| b.0.is_empty())).count();
            if missing > 0 {
                problems.push(format!(
                    "{kind} {ADMISSION}: {missing} of {} webhooks have no caBundle yet (the admission \
                     webhook writes it when it starts)",
                    bundles.len()
                ));
            }
            missing == 0
        }
    };
    let validating_ok = bundles(
        "ValidatingWebhookConfiguration",
        validating
            .map(|c| c.webhooks.unwrap_or_default().into_iter().map(|w| w.client_config.ca_bundle).collect()),
    );
    let mutating_ok = bundles(
        "MutatingWebhookConfiguration",
        mutating
            .map(|c| c.webhooks.unwrap_or_default().into_iter().map(|w| w.client_config.ca_bundle).collect()),
    );
    Ok(PlatformStatus { operator, admission, webhook_ca_bundle: validating_ok && mutating_ok, problems })
}

async fn read<K>(connected: &Connected, api: Api<K>, name: &str) -> Result<Option<K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.map_err(|e| {
        let resource = format!("{} {name}", K::plural(&()));
        KubeError::from_kube(e, Call { cluster: &connected.label(), verb: "get", resource: &resource })
    })
}

/// Whether a component's Deployment has available replicas; if not, why, in its own words.
async fn deployment_available(
    connected: &Connected,
    name: &str,
    problems: &mut Vec<String>,
) -> Result<bool, KubeError> {
    let Some(deployment) = read::<Deployment>(connected, system(connected), name).await? else {
        problems.push(format!(
            "Deployment {SYSTEM_NAMESPACE}/{name} is not installed (POST /v1/platform/bootstrap)"
        ));
        return Ok(false);
    };
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let conditions = status.conditions.unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let available_condition = condition("Available");
    let ok = available > 0 && available_condition.is_none_or(|c| c.status == "True");
    if !ok {
        // The condition that explains it: Available when false, else Progressing.
        let why = available_condition
            .filter(|c| c.status != "True")
            .or_else(|| condition("Progressing"))
            .or_else(|| condition("ReplicaFailure"))
            .map(|c| {
                format!(
                    ": {}{}",
                    c.reason.as_deref().unwrap_or(&c.type_),
                    c.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        problems.push(format!(
            "Deployment {SYSTEM_NAMESPACE}/{name}: {available} of {wanted} replicas available{why}"
        ));
    }
    Ok(ok)
}

/// The operator's autoscaling, as `POST /v1/platform/autoscale` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoscale {
    pub min: i32,
    pub max: i32,
    pub target_cpu: i32,
}

/// The operator Deployment's HorizontalPodAutoscaler.
pub fn operator_hpa(autoscale: Autoscale) -> HorizontalPodAutoscaler {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), OPERATOR.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "kubeop".to_owned()),
        (kubeop_crds::labels::MANAGED_BY.to_owned(), kubeop_crds::labels::MANAGER.to_owned()),
    ]);
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(OPERATOR.into()),
            namespace: Some(SYSTEM_NAMESPACE.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: OPERATOR.into(),
            },
            min_replicas: Some(autoscale.min),
            max_replicas: autoscale.max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(autoscale.target_cpu),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    }
}

/// Sets (`Some`) or removes (`None`) the operator's autoscaler. Setting it before bootstrap is
/// fine, as on any cluster: the autoscaler waits for its Deployment (its namespace is applied
/// first).
pub async fn autoscale(
    connected: &Connected,
    autoscale: Option<Autoscale>,
    field_manager: &str,
) -> Result<(), KubeError> {
    let api: Api<HorizontalPodAutoscaler> = system(connected);
    match autoscale {
        Some(autoscale) => {
            apply(connected, Api::all(connected.client.clone()), &system_namespace(), field_manager).await?;
            apply(connected, api, &operator_hpa(autoscale), field_manager).await.map(drop)
        }
        None => match api.delete(OPERATOR, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => {
                let resource = format!("horizontalpodautoscalers {OPERATOR}");
                Err(KubeError::from_kube(
                    e,
                    Call { cluster: &connected.label(), verb: "delete", resource: &resource },
                ))
            }
        },
    }
}

/// One permission `deploy/`'s RBAC gives a ServiceAccount (for the test that compares them
/// with what each component calls, and for the components' tests against the fake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub api_group: String,
    pub resource: String,
    pub verb: String,
    /// Empty: any name.
    pub resource_names: Vec<String>,
    /// `None`: cluster-wide (a ClusterRole).
    pub namespace: Option<String>,
}

/// Every (group, resource, verb, names) a ServiceAccount of `kubeop-system` is granted by the
/// embedded manifests.
pub fn grants(service_account: &str) -> Vec<Grant> {
    let subject_is = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == service_account
                && s.namespace.as_deref() == Some(SYSTEM_NAMESPACE)
        })
    };
    let mut grants = Vec::new();
    let mut expand = |rules: &[k8s_openapi::api::rbac::v1::PolicyRule], namespace: Option<String>| {
        for rule in rules {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        grants.push(Grant {
                            api_group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            resource_names: rule.resource_names.clone().unwrap_or_default(),
                            namespace: namespace.clone(),
                        });
                    }
                }
            }
        }
    };
    for object in MANIFESTS.iter() {
        match object {
            PlatformObject::ClusterRoleBinding(binding) if subject_is(&binding.subjects) => {
                for role in MANIFESTS.iter() {
                    if let PlatformObject::ClusterRole(role) = role
                        && role.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
                    {
                        expand(role.rules.as_deref().unwrap_or_default(), None);
                    }
                }
            }
            PlatformObject::RoleBinding(binding) if subject_is(&binding.subjects) => {
                for role in MANIFESTS.iter() {
                    if let PlatformObject::Role(role) = role
                        && role.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
                        && role.metadata.namespace == binding.metadata.namespace
                    {
                        expand(role.rules.as_deref().unwrap_or_default(), binding.metadata.namespace.clone());
                    }
                }
            }
            _ => {}
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(mocks: bool, metrics_server: bool) -> Install {
        Install {
            image: "registry.example/kubeop:test".into(),
            image_pull_policy: "Always".into(),
            webhook_failure_policy: "Ignore".into(),
            metrics_server,
            mocks,
            policy: PlatformPolicy::default(),
        }
    }

    /// Every manifest parses into its k8s-openapi type, and the list applied is the
    /// kustomization's, in its order.
    #[test]
    fn the_embedded_manifests_are_the_kustomizations() {
        let kustomization: serde_json::Value =
            serde_saphyr::from_str(include_str!("../../../deploy/kustomization.yaml")).unwrap();
        let listed: Vec<&str> =
            kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let embedded: Vec<&str> = FILES.iter().map(|(file, _)| *file).collect();
        assert_eq!(listed, embedded);
        for (file, text) in FILES.iter().chain([&METRICS_SERVER]) {
            let objects = parse_file(file, text).unwrap();
            assert!(!objects.is_empty(), "{file} has objects");
            let on_disk = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(file),
            )
            .unwrap();
            assert_eq!(&on_disk, text, "{file} is embedded as it is on disk");
        }
        assert!(MANIFESTS.len() >= 20, "{} objects", MANIFESTS.len());
        assert_eq!(system_namespace().metadata.name.as_deref(), Some(SYSTEM_NAMESPACE));
    }

    #[test]
    fn bootstrap_settings_reach_the_objects() {
        let objects = objects(&install(false, false));
        let images: Vec<(String, String)> = objects
            .iter()
            .filter_map(|o| match o {
                PlatformObject::Deployment(d) => {
                    let c = &d.spec.as_ref()?.template.spec.as_ref()?.containers[0];
                    Some((c.image.clone()?, c.image_pull_policy.clone()?))
                }
                _ => None,
            })
            .collect();
        assert_eq!(images, vec![("registry.example/kubeop:test".into(), "Always".into()); 2]);
        let policies: Vec<String> = objects
            .iter()
            .filter_map(|o| match o {
                PlatformObject::ValidatingWebhookConfiguration(c) => {
                    c.webhooks.as_ref()?[0].failure_policy.clone()
                }
                PlatformObject::MutatingWebhookConfiguration(c) => {
                    c.webhooks.as_ref()?[0].failure_policy.clone()
                }
                _ => None,
            })
            .collect();
        assert_eq!(policies, ["Ignore", "Ignore"]);
        assert!(!objects.iter().any(|o| matches!(o, PlatformObject::APIService(_))));
    }

    #[test]
    fn mocks_run_the_stand_in_and_leave_the_webhooks_out() {
        let objects = objects(&install(true, true));
        assert!(!objects.iter().any(|o| matches!(
            o,
            PlatformObject::ValidatingWebhookConfiguration(_)
                | PlatformObject::MutatingWebhookConfiguration(_)
        )));
        for object in &objects {
            if let PlatformObject::Deployment(d) = object
                && is_kubeop_component(&d.metadata)
            {
                let c = &d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
                assert_eq!(c.image.as_deref(), Some(MOCK_IMAGE));
                assert!(c.readiness_probe.is_none() && c.args.is_none());
            }
        }
        assert!(objects.iter().any(|o| matches!(o, PlatformObject::APIService(_))), "metrics-server added");
    }

    /// `(group, resource, verbs, names, namespace)` rows, expanded to one grant per verb.
    fn expand(rows: &[(&str, &str, &str, &str, Option<&str>)]) -> Vec<Grant> {
        let mut grants = Vec::new();
        for (group, resources, verbs, names, namespace) in rows {
            for resource in resources.split(' ') {
                for verb in verbs.split(' ') {
                    grants.push(Grant {
                        api_group: (*group).into(),
                        resource: resource.into(),
                        verb: verb.into(),
                        resource_names: names.split(' ').filter(|n| !n.is_empty()).map(Into::into).collect(),
                        namespace: namespace.map(Into::into),
                    });
                }
            }
        }
        grants
    }

    fn sorted(mut grants: Vec<Grant>) -> Vec<String> {
        let mut rows: Vec<String> = grants
            .drain(..)
            .map(|g| {
                format!(
                    "{:?} {} {} {:?} {:?}",
                    g.api_group, g.resource, g.verb, g.resource_names, g.namespace
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// Least privilege, written out: each line is a call the component makes. The operator runs
    /// against the fake API server (which enforces RBAC) with exactly these grants
    /// (tests/api/operator.rs); issue 13's webhook will do the same. A grant added to `deploy/`
    /// without a reason here fails this test.
    #[test]
    fn rbac_grants_exactly_what_each_component_calls() {
        let system = Some(SYSTEM_NAMESPACE);
        // Server-side apply creates (create) and repairs (patch); nothing is replaced (update).
        let crud = "get list watch create patch delete";
        let operator = expand(&[
            // Watches and reconciles kubeop's resources, reports their status, holds finalizers.
            ("paas.kubeop.io", "tenants projects apps", "get list watch patch", "", None),
            ("paas.kubeop.io", "tenants/status projects/status apps/status", "get patch", "", None),
            ("paas.kubeop.io", "tenants/finalizers projects/finalizers apps/finalizers", "update", "", None),
            // A project's namespace and what isolates it; an app's workload.
            ("", "namespaces", crud, "", None),
            ("", "resourcequotas limitranges services", crud, "", None),
            ("networking.k8s.io", "networkpolicies ingresses", crud, "", None),
            ("apps", "deployments", crud, "", None),
            // Kubernetes Events about what it did.
            ("events.k8s.io", "events", "create patch", "", None),
            // The policy ConfigMap, and leader election.
            ("", "configmaps", "get list watch", "", system),
            ("coordination.k8s.io", "leases", "get list watch create update patch", "", system),
        ]);
        assert_eq!(sorted(grants("kubeop-operator")), sorted(operator));
        let admission = expand(&[
            // Tenant and project of a namespace (its labels), host collisions.
            ("", "namespaces", "list watch", "", None),
            ("networking.k8s.io", "ingresses", "list watch", "", None),
            ("gateway.networking.k8s.io", "httproutes", "list watch", "", None),
            // Its CA into its own webhook configurations, and nothing else's.
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations mutatingwebhookconfigurations",
                "get patch",
                "kubeop-admission",
                None,
            ),
            // Its serving certificate: creating it once, then only that Secret (replicas race
            // on its resourceVersion, so no lease).
            ("", "secrets", "create", "", system),
            ("", "secrets", "get update", "kubeop-admission-tls", system),
            // The policy ConfigMap, watched.
            ("", "configmaps", "list watch", "", system),
        ]);
        assert_eq!(sorted(grants("kubeop-admission")), sorted(admission));
        assert!(grants("default").is_empty());
    }

    #[test]
    fn a_document_of_another_kind_is_refused() {
        let error = parse_file("x.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n").unwrap_err();
        assert!(error.contains("does not install Pod"), "{error}");
        let error = parse_file("x.yaml", "apiVersion: apps/v1\nkind: Deployment\nspec: 3\n").unwrap_err();
        assert!(error.contains("not a valid Deployment"), "{error}");
    }
}
