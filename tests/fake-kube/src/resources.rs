//! Which resources the fake serves: a built-in table plus whatever CustomResourceDefinitions
//! register, and the discovery documents derived from them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, Result};

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    /// Has a `/status` subresource: main-resource writes leave `.status` alone.
    pub status: bool,
    pub short_names: Vec<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    pub fn is_service_account(&self) -> bool {
        self.group.is_empty() && self.plural == "serviceaccounts"
    }
}

/// (group, version, kind, plural, namespaced, status subresource, short names)
type Row = (&'static str, &'static str, &'static str, &'static str, bool, bool, &'static [&'static str]);

const BUILT_IN: &[Row] = &[
    ("", "v1", "Namespace", "namespaces", false, true, &["ns"]),
    ("", "v1", "ConfigMap", "configmaps", true, false, &["cm"]),
    ("", "v1", "Secret", "secrets", true, false, &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, false, &["sa"]),
    ("", "v1", "Service", "services", true, true, &["svc"]),
    ("", "v1", "Pod", "pods", true, true, &["po"]),
    ("", "v1", "Event", "events", true, false, &["ev"]),
    ("", "v1", "ResourceQuota", "resourcequotas", true, true, &["quota"]),
    ("", "v1", "LimitRange", "limitranges", true, false, &["limits"]),
    ("", "v1", "Endpoints", "endpoints", true, false, &["ep"]),
    ("apps", "v1", "Deployment", "deployments", true, true, &["deploy"]),
    ("apps", "v1", "StatefulSet", "statefulsets", true, true, &["sts"]),
    ("apps", "v1", "DaemonSet", "daemonsets", true, true, &["ds"]),
    ("apps", "v1", "ReplicaSet", "replicasets", true, true, &["rs"]),
    ("batch", "v1", "Job", "jobs", true, true, &[]),
    ("batch", "v1", "CronJob", "cronjobs", true, true, &["cj"]),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, false, &[]),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, false, &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, false, &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, false, &[]),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, false, &["netpol"]),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, true, &["ing"]),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, true, &["hpa"]),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, true, &["pdb"]),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, false, &[]),
    ("events.k8s.io", "v1", "Event", "events", true, false, &["ev"]),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        false,
        &[],
    ),
    ("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, true, &[]),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        true,
        &["crd"],
    ),
];

const ALL_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The resource table: built-ins, then CRD-registered resources keyed by the CRD's name.
#[derive(Debug, Clone)]
pub struct Registry {
    built_in: Vec<ResourceType>,
    custom: BTreeMap<String, Vec<ResourceType>>,
}

impl Registry {
    pub fn new() -> Registry {
        let built_in = BUILT_IN
            .iter()
            .map(|&(group, version, kind, plural, namespaced, status, short)| ResourceType {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                namespaced,
                status,
                short_names: short.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        Registry { built_in, custom: BTreeMap::new() }
    }

    fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.built_in.iter().chain(self.custom.values().flatten())
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.all().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Resources are stored by group and plural, so any version finds the kind for a group.
    pub fn any_version(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.all().find(|r| r.group == group && r.plural == plural)
    }

    pub fn register_crd(&mut self, crd_name: &str, resources: Vec<ResourceType>) {
        self.custom.insert(crd_name.to_owned(), resources);
    }

    pub fn unregister_crd(&mut self, crd_name: &str) -> Vec<ResourceType> {
        self.custom.remove(crd_name).unwrap_or_default()
    }

    /// `/api`
    pub fn api_versions(&self) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443" }],
        })
    }

    /// Groups with their versions in first-seen order (the first is preferred).
    fn groups(&self, core: bool) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all().filter(|r| r.group.is_empty() == core) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        groups
    }

    /// `/apis`: every non-core group with its versions.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups(false)
            .into_iter()
            .map(|(name, versions)| {
                let entries: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
                    .collect();
                json!({ "name": name, "versions": entries, "preferredVersion": entries[0] })
            })
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// Aggregated discovery (apidiscovery.k8s.io/v2) of `/api` (core) or `/apis`: every group,
    /// version and resource in one document, as kubectl and `Discovery::run_aggregated` ask.
    pub fn aggregated_discovery(&self, core: bool) -> Value {
        let kind = |r: &ResourceType| json!({ "group": r.group, "version": r.version, "kind": r.kind });
        let items: Vec<Value> = self
            .groups(core)
            .into_iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = self
                            .all()
                            .filter(|r| r.group == group && r.version == *version)
                            .map(|r| {
                                let mut subresources = Vec::new();
                                if r.status {
                                    subresources.push(json!({
                                        "subresource": "status",
                                        "responseKind": kind(r),
                                        "verbs": ["get", "patch", "update"],
                                    }));
                                }
                                if r.is_service_account() {
                                    subresources.push(json!({
                                        "subresource": "token",
                                        "responseKind": {
                                            "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"
                                        },
                                        "verbs": ["create"],
                                    }));
                                }
                                json!({
                                    "resource": r.plural,
                                    "responseKind": kind(r),
                                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": r.singular,
                                    "verbs": ALL_VERBS,
                                    "shortNames": r.short_names,
                                    "subresources": subresources,
                                })
                            })
                            .collect();
                        json!({ "version": version, "resources": resources, "freshness": "Current" })
                    })
                    .collect();
                json!({ "metadata": { "name": group }, "versions": versions })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }

    /// `/api/v1` or `/apis/{group}/{version}`; `None` when nothing is served there.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for r in self.all().filter(|r| r.group == group && r.version == version) {
            resources.push(json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ALL_VERBS,
                "shortNames": r.short_names,
            }));
            if r.status {
                resources.push(json!({
                    "name": format!("{}/status", r.plural),
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if r.is_service_account() {
                resources.push(json!({
                    "name": "serviceaccounts/token",
                    "singularName": "",
                    "namespaced": true,
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }
}

/// The resources a CustomResourceDefinition asks to serve, one per served version.
pub fn resources_of_crd(crd: &Value) -> Result<Vec<ResourceType>> {
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let invalid =
        |field: &str| ApiError::invalid("CustomResourceDefinition", name, format!("{field}: Required value"));
    let spec = crd.get("spec").ok_or_else(|| invalid("spec"))?;
    let text = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    let group = text("/group").ok_or_else(|| invalid("spec.group"))?;
    let plural = text("/names/plural").ok_or_else(|| invalid("spec.names.plural"))?;
    let kind = text("/names/kind").ok_or_else(|| invalid("spec.names.kind"))?;
    let singular = text("/names/singular").unwrap_or_else(|| kind.to_lowercase());
    if name != format!("{plural}.{group}") {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            name,
            format!("metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = text("/scope").as_deref() != Some("Cluster");
    let short_names: Vec<String> = spec
        .pointer("/names/shortNames")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let versions = spec.get("versions").and_then(Value::as_array).ok_or_else(|| invalid("spec.versions"))?;
    let mut served = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(version_name) = version.get("name").and_then(Value::as_str) else {
            return Err(invalid("spec.versions[].name"));
        };
        served.push(ResourceType {
            group: group.clone(),
            version: version_name.to_owned(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            status: version.pointer("/subresources/status").is_some(),
            short_names: short_names.clone(),
        });
    }
    Ok(served)
}
