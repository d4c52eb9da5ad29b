//! kubeop's custom resources, group `paas.kubeop.io`, version `v1alpha1`, as in the original
//! kubeOP: the manager writes them to a tenant's cluster and the operator turns them into
//! namespaces and workloads. Defined once here; `kubeop crds` prints the CustomResourceDefinitions
//! and `deploy/crds/` holds the same YAML (a test fails when they drift).
//!
//! Objects are named after the database ids (`t-…`, `p-…`, `a-…`: an id in lower case, `_` made
//! `-`, since object names are DNS-1123) so that renaming changes a spec field, never the object.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod platform;

pub const GROUP: &str = "paas.kubeop.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "paas.kubeop.io/v1alpha1";

/// Labels the manager puts on every object it writes, so a cluster can be searched by database id.
pub mod labels {
    pub const TENANT_ID: &str = "paas.kubeop.io/tenant-id";
    pub const PROJECT_ID: &str = "paas.kubeop.io/project-id";
    pub const APP_ID: &str = "paas.kubeop.io/app-id";
    pub const CRONJOB_ID: &str = "paas.kubeop.io/cronjob-id";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGER: &str = "kubeop";
}

/// A tenant: a team that owns projects. Cluster-scoped.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paas.kubeop.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "kt",
    category = "kubeop",
    status = "TenantStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The tenant's name in kubeop (a DNS-1123 label).
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// How many projects the tenant has on this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A project: one namespace of a tenant. Cluster-scoped, since it defines the namespace its
/// apps live in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paas.kubeop.io",
    version = "v1alpha1",
    kind = "Project",
    plural = "projects",
    shortname = "kp",
    category = "kubeop",
    status = "ProjectStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenantRef"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.namespace"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    /// The owning Tenant object's name.
    pub tenant_ref: String,
    /// The project's name in kubeop (a DNS-1123 label).
    pub name: String,
    /// `kubeop-<tenant>-<project>`, fixed when the project was created.
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// An app: a workload in its project's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paas.kubeop.io",
    version = "v1alpha1",
    kind = "App",
    plural = "apps",
    shortname = "ka",
    category = "kubeop",
    namespaced,
    status = "AppStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// The app's name in kubeop (a DNS-1123 label).
    pub name: String,
    /// The owning Project object's name.
    pub project_ref: String,
    /// The image reference as the user gave it (already allowed by the image policy).
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// The container port the Service targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// A plain environment variable (secrets come from elsewhere).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Requests and limits as Kubernetes quantities (`250m`, `512Mi`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub requests: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub limits: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The three CustomResourceDefinitions, in the order they are applied.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    vec![Tenant::crd(), Project::crd(), App::crd()]
}

/// The definitions as one multi-document YAML stream, exactly what `deploy/crds/` holds.
pub fn definitions_yaml() -> String {
    definitions().iter().map(definition_yaml).collect::<Vec<_>>().join("---\n")
}

/// One definition as YAML; `deploy/crds/<plural>.paas.kubeop.io.yaml` holds each.
pub fn definition_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CustomResourceDefinition serialises")
}

/// The file name of a definition under `deploy/crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_name_the_group_version_and_scope() {
        let crds = definitions();
        let names: Vec<_> = crds.iter().map(|c| c.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["tenants.paas.kubeop.io", "projects.paas.kubeop.io", "apps.paas.kubeop.io"]);
        let scopes: Vec<_> = crds.iter().map(|c| c.spec.scope.as_str()).collect();
        assert_eq!(scopes, ["Cluster", "Cluster", "Namespaced"]);
        for crd in &crds {
            assert_eq!(crd.spec.group, GROUP);
            let version = &crd.spec.versions[0];
            assert_eq!((version.name.as_str(), version.served, version.storage), (VERSION, true, true));
            assert!(
                version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
                "status is a subresource"
            );
        }
    }

    #[test]
    fn yaml_reads_back_as_the_same_definitions() {
        for crd in definitions() {
            let yaml = definition_yaml(&crd);
            let back: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(back, crd);
        }
    }

    #[test]
    fn app_spec_round_trips_with_camel_case_keys() {
        let spec = AppSpec {
            name: "web".into(),
            project_ref: "p-01".into(),
            image: "nginx:1.25".into(),
            host: Some("web.example.com".into()),
            replicas: Some(2),
            port: Some(8080),
            env: vec![EnvVar { name: "MODE".into(), value: "prod".into() }],
            resources: None,
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["projectRef"], "p-01");
        assert!(json.get("resources").is_none(), "absent fields stay absent so apply does not own them");
        assert_eq!(serde_json::from_value::<AppSpec>(json).unwrap(), spec);
    }
}

/// `deploy/crds/` is what `kubeop crds --dir deploy/crds` writes; this fails when the Rust types
/// changed and the files were not regenerated (or someone edited the files by hand).
#[cfg(test)]
mod deploy {
    use std::path::Path;

    #[test]
    fn deploy_crds_match_the_code() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        let mut expected: Vec<String> = super::definitions().iter().map(super::file_name).collect();
        for crd in super::definitions() {
            let path = dir.join(super::file_name(&crd));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == super::definition_yaml(&crd),
                "{} differs from the code: run `cargo run -p kubeop -- crds --dir deploy/crds`",
                path.display()
            );
        }
        let mut present: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".paas.kubeop.io.yaml"))
            .collect();
        present.sort();
        expected.sort();
        assert_eq!(present, expected, "deploy/crds holds a definition the code no longer has");
    }
}
