//! The objects a Project and an App imply, as typed `k8s-openapi` values: pure functions of the
//! custom resource, the settings and the platform policy, so they are checked without a cluster.
//! The controllers only apply what these return.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, PodSpec,
    PodTemplateSpec, ResourceQuota, ResourceQuotaSpec, ResourceRequirements, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use kubeop_crds::platform::{self, PolicyDocument};
use kubeop_crds::{App, Project, labels};

use crate::Settings;
use crate::error::Error;

pub const QUOTA: &str = "kubeop-quota";
pub const LIMIT_RANGE: &str = "kubeop-defaults";
pub const DEFAULT_DENY: &str = "default-deny";
pub const ALLOW_SAME_NAMESPACE: &str = "allow-same-namespace";
pub const ALLOW_INGRESS_CONTROLLER: &str = "allow-ingress-controller";
pub const ALLOW_EGRESS_BASELINE: &str = "allow-egress-baseline";
pub const ALLOW_DNS: &str = "allow-dns";

/// The label every namespace carries with its own name (set by the API server), which is how a
/// network policy selects a namespace by name.
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// The Service port every app answers on inside the cluster.
pub const SERVICE_PORT: i32 = 80;
pub const DEFAULT_APP_PORT: i32 = 8080;

/// The manager's id labels of a custom resource that the objects it implies carry too, so a
/// cluster can be searched by database id; plus kubeop as the manager.
fn id_labels(resource: &impl Resource, keys: &[&str]) -> BTreeMap<String, String> {
    let own = resource.meta().labels.as_ref();
    let mut labels: BTreeMap<String, String> = keys
        .iter()
        .filter_map(|key| own.and_then(|l| l.get(*key)).map(|value| ((*key).to_owned(), value.clone())))
        .collect();
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    labels
}

pub fn project_labels(project: &Project) -> BTreeMap<String, String> {
    id_labels(project, &[labels::TENANT_ID, labels::PROJECT_ID])
}

fn in_project(project: &Project, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(project.spec.namespace.clone()),
        labels: Some(project_labels(project)),
        ..ObjectMeta::default()
    }
}

/// The project's namespace, with Pod Security Admission enforcing (and auditing and warning
/// about) the configured level.
pub fn namespace(project: &Project, settings: &Settings) -> Namespace {
    let mut labels = project_labels(project);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(format!("pod-security.kubernetes.io/{mode}"), settings.pod_security_level.clone());
        labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), "latest".into());
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(project.spec.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Requests within the platform's `quotaMax` (the settings' defaults where it sets none), and
/// limits at twice that so bursting containers still fit.
pub fn resource_quota(
    project: &Project,
    settings: &Settings,
    policy: &PolicyDocument,
) -> Result<ResourceQuota, Error> {
    let cpu = policy.quota_max.requests_cpu.as_deref().unwrap_or(&settings.default_quota_cpu);
    let memory = policy.quota_max.requests_memory.as_deref().unwrap_or(&settings.default_quota_memory);
    let doubled =
        |quantity: &str| double_quantity(quantity).ok_or_else(|| Error::InvalidPolicy(quantity.to_owned()));
    let hard = BTreeMap::from([
        ("requests.cpu".to_owned(), Quantity(cpu.to_owned())),
        ("requests.memory".to_owned(), Quantity(memory.to_owned())),
        ("limits.cpu".to_owned(), Quantity(doubled(cpu)?)),
        ("limits.memory".to_owned(), Quantity(doubled(memory)?)),
    ]);
    Ok(ResourceQuota {
        metadata: in_project(project, QUOTA),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..ResourceQuotaSpec::default() }),
        status: None,
    })
}

/// Container defaults, so pods that state no requests or limits still fit the quota (which
/// otherwise refuses them).
pub fn limit_range(project: &Project) -> LimitRange {
    let defaults = platform::default_resources();
    LimitRange {
        metadata: in_project(project, LIMIT_RANGE),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: defaults.limits,
                default_request: defaults.requests,
                ..LimitRangeItem::default()
            }],
        }),
    }
}

fn every_pod() -> Option<LabelSelector> {
    Some(LabelSelector::default())
}

fn namespace_named(name: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(NAMESPACE_NAME.to_owned(), name.to_owned())])),
        ..LabelSelector::default()
    })
}

fn network_policy(project: &Project, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy { metadata: in_project(project, name), spec: Some(spec) }
}

/// Deny by default; then traffic within the namespace, from the ingress controller, to the
/// policy's egress CIDRs and to cluster DNS. `allow-egress-baseline` is left out when the policy
/// lists no CIDR (a policy without peers would mean nothing, an empty `to` everything).
pub fn network_policies(
    project: &Project,
    settings: &Settings,
    policy: &PolicyDocument,
) -> Vec<NetworkPolicy> {
    let types = |types: &[&str]| Some(types.iter().map(|t| (*t).to_owned()).collect());
    let mut policies = vec![
        network_policy(
            project,
            DEFAULT_DENY,
            NetworkPolicySpec {
                pod_selector: every_pod(),
                policy_types: types(&["Ingress", "Egress"]),
                ..NetworkPolicySpec::default()
            },
        ),
        // Both directions: with egress denied by default, pods of one project could not
        // reach each other through ingress rules alone.
        network_policy(
            project,
            ALLOW_SAME_NAMESPACE,
            NetworkPolicySpec {
                pod_selector: every_pod(),
                policy_types: types(&["Ingress", "Egress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: every_pod(),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: None,
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: every_pod(),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: None,
                }]),
            },
        ),
        network_policy(
            project,
            ALLOW_INGRESS_CONTROLLER,
            NetworkPolicySpec {
                pod_selector: every_pod(),
                policy_types: types(&["Ingress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: namespace_named(&settings.ingress_namespace),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: None,
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
    ];
    if !policy.egress_baseline.is_empty() {
        let peers = policy
            .egress_baseline
            .iter()
            .map(|cidr| NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: cidr.clone(), except: None }),
                ..NetworkPolicyPeer::default()
            })
            .collect();
        policies.push(network_policy(
            project,
            ALLOW_EGRESS_BASELINE,
            NetworkPolicySpec {
                pod_selector: every_pod(),
                policy_types: types(&["Egress"]),
                egress: Some(vec![NetworkPolicyEgressRule { to: Some(peers), ports: None }]),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    let dns_port = |protocol: &str| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(53)),
        end_port: None,
    };
    policies.push(network_policy(
        project,
        ALLOW_DNS,
        NetworkPolicySpec {
            pod_selector: every_pod(),
            policy_types: types(&["Egress"]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: namespace_named(&settings.dns_namespace),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])),
                        ..LabelSelector::default()
                    }),
                    ip_block: None,
                }]),
                ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
            }]),
            ..NetworkPolicySpec::default()
        },
    ));
    policies
}

/// The value of the `paas.kubeop.io/app-id` label the workload is selected by: the manager's
/// id, or for an App made by hand (without the label) its object name, which is as unique.
fn app_id(app: &App) -> String {
    app.labels().get(labels::APP_ID).cloned().unwrap_or_else(|| app.name_any())
}

fn selector_labels(app: &App) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::APP_ID.to_owned(), app_id(app))])
}

pub fn app_labels(app: &App) -> BTreeMap<String, String> {
    let mut labels = id_labels(app, &[labels::TENANT_ID, labels::PROJECT_ID]);
    labels.extend(selector_labels(app));
    labels.insert("app.kubernetes.io/name".into(), app.spec.name.clone());
    labels
}

/// Named after the App object, owned by it (controller) so Kubernetes collects it with the App.
fn owned_by(app: &App) -> ObjectMeta {
    ObjectMeta {
        name: Some(app.name_any()),
        namespace: app.namespace(),
        labels: Some(app_labels(app)),
        owner_references: app.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

pub fn app_port(app: &App) -> i32 {
    app.spec.port.unwrap_or(DEFAULT_APP_PORT)
}

pub fn app_replicas(app: &App) -> i32 {
    app.spec.replicas.unwrap_or(1)
}

/// The App's requests and limits, or the platform defaults when it states none.
fn resources(app: &App) -> ResourceRequirements {
    let quantities = |map: &BTreeMap<String, String>| {
        (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect())
    };
    match &app.spec.resources {
        Some(own) if !(own.requests.is_empty() && own.limits.is_empty()) => ResourceRequirements {
            requests: quantities(&own.requests),
            limits: quantities(&own.limits),
            ..ResourceRequirements::default()
        },
        _ => platform::default_resources(),
    }
}

/// One container under the platform's security baseline (non-root, no privilege escalation,
/// read-only root filesystem, no capabilities, RuntimeDefault seccomp), with the App's image,
/// env, port, replicas and resources; no service account token, since apps do not call the API.
pub fn deployment(app: &App) -> Deployment {
    let env: Vec<EnvVar> = app
        .spec
        .env
        .iter()
        .map(|var| EnvVar { name: var.name.clone(), value: Some(var.value.clone()), value_from: None })
        .collect();
    let container = Container {
        name: app.spec.name.clone(),
        image: Some(app.spec.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: app_port(app),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: (!env.is_empty()).then_some(env),
        resources: Some(resources(app)),
        security_context: Some(platform::container_security_context()),
        ..Container::default()
    };
    Deployment {
        metadata: owned_by(app),
        spec: Some(DeploymentSpec {
            replicas: Some(app_replicas(app)),
            selector: LabelSelector { match_labels: Some(selector_labels(app)), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(app_labels(app)), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    security_context: Some(platform::pod_security_context()),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// A ClusterIP Service: port 80 to the App's port.
pub fn service(app: &App) -> Service {
    Service {
        metadata: owned_by(app),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(app)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(app_port(app))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// An Ingress routing the App's host to its Service; none when the App has no host.
pub fn ingress(app: &App, settings: &Settings) -> Option<Ingress> {
    let host = app.spec.host.clone()?;
    let path = HTTPIngressPath {
        path: Some("/".into()),
        path_type: "Prefix".into(),
        backend: IngressBackend {
            service: Some(IngressServiceBackend {
                name: app.name_any(),
                port: Some(ServiceBackendPort { number: Some(SERVICE_PORT), name: None }),
            }),
            resource: None,
        },
    };
    Some(Ingress {
        metadata: owned_by(app),
        spec: Some(IngressSpec {
            ingress_class_name: settings.ingress_class.clone(),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue { paths: vec![path] }),
            }]),
            ..IngressSpec::default()
        }),
        status: None,
    })
}

/// Twice a Kubernetes quantity, in the same unit: `4` → `8`, `8Gi` → `16Gi`, `1.5` → `3`,
/// `250m` → `500m`. `None` when `quantity` is not one.
pub fn double_quantity(quantity: &str) -> Option<String> {
    const SUFFIXES: &[&str] =
        &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"];
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let split = quantity.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && digits_only(e));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let valid = (SUFFIXES.contains(&suffix) || exponent)
        && !(whole.is_empty() && fraction.is_empty())
        && digits_only(whole)
        && digits_only(fraction);
    if !valid {
        return None;
    }
    // Doubling in decimal, digit by digit: exact for any length, no float rounding.
    let mut carry = 0;
    let mut doubled: Vec<u8> = format!("{whole}{fraction}")
        .bytes()
        .rev()
        .map(|digit| {
            let value = (digit - b'0') * 2 + carry;
            carry = value / 10;
            b'0' + value % 10
        })
        .collect();
    if carry > 0 {
        doubled.push(b'1');
    }
    doubled.reverse();
    let doubled = String::from_utf8(doubled).expect("ASCII digits");
    let (whole, fraction) = doubled.split_at(doubled.len() - fraction.len());
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        whole => whole,
    };
    let fraction = fraction.trim_end_matches('0');
    Some(if fraction.is_empty() { format!("{whole}{suffix}") } else { format!("{whole}.{fraction}{suffix}") })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kubeop_crds::platform::QuotaMaxDocument;
    use kubeop_crds::{AppSpec, EnvVar as AppEnv, ProjectSpec, Resources};
    use serde_json::{Value, json};

    use super::*;

    fn project() -> Project {
        let mut project = Project::new(
            "p-01",
            ProjectSpec {
                tenant_ref: "t-01".into(),
                name: "web".into(),
                namespace: "kubeop-acme-web".into(),
            },
        );
        project.metadata.labels = Some(BTreeMap::from([
            (labels::TENANT_ID.to_owned(), "t_01".to_owned()),
            (labels::PROJECT_ID.to_owned(), "p_01".to_owned()),
            (labels::MANAGED_BY.to_owned(), "kubeop".to_owned()),
            ("unrelated".to_owned(), "x".to_owned()),
        ]));
        project
    }

    fn app(host: Option<&str>) -> App {
        let mut app = App::new(
            "a-01",
            AppSpec {
                name: "shop".into(),
                project_ref: "p-01".into(),
                image: "docker.io/library/nginx:1.27".into(),
                host: host.map(Into::into),
                replicas: Some(2),
                port: None,
                env: vec![AppEnv { name: "MODE".into(), value: "prod".into() }],
                resources: None,
            },
        );
        app.metadata.namespace = Some("kubeop-acme-web".into());
        app.metadata.uid = Some("0000-uid".into());
        app.metadata.labels = Some(BTreeMap::from([
            (labels::TENANT_ID.to_owned(), "t_01".to_owned()),
            (labels::PROJECT_ID.to_owned(), "p_01".to_owned()),
            (labels::APP_ID.to_owned(), "a_01".to_owned()),
        ]));
        app
    }

    fn policy(cpu: Option<&str>, memory: Option<&str>, egress: &[&str]) -> PolicyDocument {
        PolicyDocument {
            image_allowlist: vec![],
            egress_baseline: egress.iter().map(|c| (*c).to_owned()).collect(),
            quota_max: QuotaMaxDocument {
                requests_cpu: cpu.map(Into::into),
                requests_memory: memory.map(Into::into),
            },
            ..PolicyDocument::default()
        }
    }

    fn json_of(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn the_namespace_carries_the_ids_and_pod_security_labels() {
        let settings = Settings { pod_security_level: "baseline".into(), ..Settings::default() };
        let namespace = json_of(&namespace(&project(), &settings));
        assert_eq!(
            namespace,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "kubeop-acme-web",
                    "labels": {
                        "paas.kubeop.io/tenant-id": "t_01",
                        "paas.kubeop.io/project-id": "p_01",
                        "app.kubernetes.io/managed-by": "kubeop",
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                        "pod-security.kubernetes.io/audit": "baseline",
                        "pod-security.kubernetes.io/audit-version": "latest",
                        "pod-security.kubernetes.io/warn": "baseline",
                        "pod-security.kubernetes.io/warn-version": "latest",
                    }
                }
            })
        );
    }

    #[test]
    fn the_quota_is_the_policys_maximum_with_limits_at_twice_that() {
        let quota =
            resource_quota(&project(), &Settings::default(), &policy(Some("4"), Some("8Gi"), &[])).unwrap();
        assert_eq!(quota.metadata.name.as_deref(), Some(QUOTA));
        assert_eq!(quota.metadata.namespace.as_deref(), Some("kubeop-acme-web"));
        assert_eq!(
            json_of(&quota.spec.unwrap().hard),
            json!({"requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "16Gi"})
        );
    }

    #[test]
    fn without_quota_max_the_quota_takes_the_settings_defaults() {
        let only_cpu = policy(Some("500m"), None, &[]);
        let quota = resource_quota(&project(), &Settings::default(), &only_cpu).unwrap();
        assert_eq!(
            json_of(&quota.spec.unwrap().hard),
            json!({"requests.cpu": "500m", "requests.memory": "4Gi", "limits.cpu": "1000m", "limits.memory": "8Gi"})
        );
        let broken = policy(Some("four"), None, &[]);
        let error = resource_quota(&project(), &Settings::default(), &broken).unwrap_err();
        assert_eq!(error.reason(), "InvalidPolicy");
    }

    #[test]
    fn quantities_double_exactly() {
        for (quantity, doubled) in [
            ("4", "8"),
            ("8Gi", "16Gi"),
            ("1.5", "3"),
            ("0.75", "1.5"),
            (".5", "1"),
            ("250m", "500m"),
            ("999", "1998"),
            ("5e3", "10e3"),
            ("1E", "2E"),
        ] {
            assert_eq!(double_quantity(quantity).as_deref(), Some(doubled), "{quantity}");
        }
        for bad in ["", "four", "4 Gi", "4GB", "-1", "1.2.3", "Gi", "e3"] {
            assert_eq!(double_quantity(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_limit_range_defaults_containers_to_the_platform_resources() {
        let range = json_of(&limit_range(&project()));
        assert_eq!(range["metadata"]["name"], LIMIT_RANGE);
        assert_eq!(
            range["spec"],
            json!({"limits": [{
                "type": "Container",
                "default": {"cpu": "500m", "memory": "256Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            }]})
        );
    }

    #[test]
    fn network_policies_deny_by_default_and_allow_the_baseline() {
        let settings = Settings::default();
        let policies =
            network_policies(&project(), &settings, &policy(None, None, &["10.0.0.0/8", "192.168.0.0/16"]));
        let by_name: BTreeMap<String, Value> =
            policies.iter().map(|p| (p.metadata.name.clone().unwrap(), json_of(&p.spec))).collect();
        assert_eq!(
            by_name.keys().map(String::as_str).collect::<Vec<_>>(),
            [ALLOW_DNS, ALLOW_EGRESS_BASELINE, ALLOW_INGRESS_CONTROLLER, ALLOW_SAME_NAMESPACE, DEFAULT_DENY]
        );
        assert_eq!(by_name[DEFAULT_DENY], json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
        assert_eq!(by_name[ALLOW_SAME_NAMESPACE]["ingress"], json!([{"from": [{"podSelector": {}}]}]));
        assert_eq!(
            by_name[ALLOW_INGRESS_CONTROLLER]["ingress"],
            json!([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]}])
        );
        assert_eq!(
            by_name[ALLOW_EGRESS_BASELINE]["egress"],
            json!([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "192.168.0.0/16"}}]}])
        );
        assert_eq!(
            by_name[ALLOW_DNS],
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }]
            })
        );
        for policy in &policies {
            assert_eq!(policy.metadata.namespace.as_deref(), Some("kubeop-acme-web"));
            assert_eq!(policy.metadata.labels.as_ref().unwrap()[labels::PROJECT_ID], "p_01");
        }
    }

    #[test]
    fn without_egress_cidrs_there_is_no_egress_baseline_policy() {
        let policies = network_policies(&project(), &Settings::default(), &PolicyDocument::default());
        assert!(policies.iter().all(|p| p.metadata.name.as_deref() != Some(ALLOW_EGRESS_BASELINE)));
        assert_eq!(policies.len(), 4);
    }

    #[test]
    fn the_deployment_runs_the_app_under_the_security_baseline() {
        let deployment = json_of(&deployment(&app(None)));
        assert_eq!(deployment["metadata"]["name"], "a-01");
        assert_eq!(deployment["metadata"]["namespace"], "kubeop-acme-web");
        let owner: Vec<OwnerReference> =
            serde_json::from_value(deployment["metadata"]["ownerReferences"].clone()).unwrap();
        assert_eq!(
            (owner[0].kind.as_str(), owner[0].name.as_str(), owner[0].uid.as_str(), owner[0].controller),
            ("App", "a-01", "0000-uid", Some(true))
        );
        assert_eq!(deployment["metadata"]["labels"]["app.kubernetes.io/name"], "shop");
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 2);
        assert_eq!(spec["selector"], json!({"matchLabels": {"paas.kubeop.io/app-id": "a_01"}}));
        assert_eq!(spec["template"]["metadata"]["labels"]["paas.kubeop.io/app-id"], "a_01");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "shop");
        assert_eq!(container["image"], "docker.io/library/nginx:1.27");
        assert_eq!(container["ports"], json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]));
        assert_eq!(container["env"], json!([{"name": "MODE", "value": "prod"}]));
        assert_eq!(container["resources"], json_of(&platform::default_resources()));
        assert_eq!(
            container["securityContext"],
            json!({
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            })
        );
    }

    #[test]
    fn the_apps_own_resources_replace_the_defaults() {
        let mut app = app(None);
        app.spec.resources = Some(Resources {
            requests: BTreeMap::from([("cpu".to_owned(), "1".to_owned())]),
            limits: BTreeMap::from([("cpu".to_owned(), "2".to_owned())]),
        });
        app.spec.port = Some(3000);
        let container = &json_of(&deployment(&app))["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["resources"], json!({"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}));
        assert_eq!(container["ports"][0]["containerPort"], 3000);
    }

    #[test]
    fn the_service_sends_port_80_to_the_app() {
        let service = json_of(&service(&app(None)));
        assert_eq!(
            service["spec"],
            json!({
                "type": "ClusterIP",
                "selector": {"paas.kubeop.io/app-id": "a_01"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            })
        );
        assert_eq!(service["metadata"]["ownerReferences"][0]["name"], "a-01");
    }

    #[test]
    fn an_ingress_exists_only_with_a_host() {
        let settings = Settings::default();
        assert!(ingress(&app(None), &settings).is_none());
        let ingress = json_of(&ingress(&app(Some("shop.example.com")), &settings).unwrap());
        assert_eq!(
            ingress["spec"],
            json!({
                "ingressClassName": "nginx",
                "rules": [{
                    "host": "shop.example.com",
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "a-01", "port": {"number": 80}}},
                    }]},
                }],
            })
        );
        let classless = Settings { ingress_class: None, ..settings };
        let spec = json_of(&super::ingress(&app(Some("shop.example.com")), &classless).unwrap().spec);
        assert!(spec.get("ingressClassName").is_none());
    }

    #[test]
    fn an_app_made_by_hand_is_selected_by_its_name() {
        let mut app = app(None);
        app.metadata.labels = None;
        assert_eq!(app_labels(&app)[labels::APP_ID], "a-01");
        assert_eq!(app_labels(&app)[labels::MANAGED_BY], "kubeop");
    }
}
