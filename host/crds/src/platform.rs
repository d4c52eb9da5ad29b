//! What the manager, the operator and the admission webhook agree on besides the custom
//! resources: where the platform lives in a cluster, the `kubeop-policy` ConfigMap's format, and
//! the baseline every workload kubeop writes runs with.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

/// The namespace of kubeop's in-cluster components and of the policy ConfigMap.
pub const SYSTEM_NAMESPACE: &str = "kubeop-system";
/// The ConfigMap the manager writes the platform policy to, on every cluster.
pub const POLICY_CONFIG_MAP: &str = "kubeop-policy";
/// Its one key: a [`PolicyDocument`] as JSON.
pub const POLICY_KEY: &str = "policy.json";

/// The platform policy as the ConfigMap holds it: the seed's `GET /v1/platform/policy` shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDocument {
    #[serde(default)]
    pub image_allowlist: Vec<String>,
    #[serde(default)]
    pub egress_baseline: Vec<String>,
    #[serde(default)]
    pub quota_max: QuotaMaxDocument,
    /// The admission review's part (issue 13): allowed hosts, Service types, rules in audit mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_service_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_rules: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaMaxDocument {
    #[serde(rename = "requestsCPU", default, skip_serializing_if = "Option::is_none")]
    pub requests_cpu: Option<String>,
    #[serde(rename = "requestsMemory", default, skip_serializing_if = "Option::is_none")]
    pub requests_memory: Option<String>,
}

/// The pod-level baseline of every workload kubeop writes (Pod Security "restricted").
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..PodSecurityContext::default()
    }
}

/// The container-level baseline: no privilege escalation, read-only root filesystem, every
/// capability dropped, RuntimeDefault seccomp, non-root.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..SecurityContext::default()
    }
}

/// Requests and limits for a container that states none, so it fits a project's quota.
pub fn default_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.into())),
            ("memory".to_owned(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities("100m", "128Mi")),
        limits: Some(quantities("500m", "256Mi")),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_document_is_the_seeds_shape() {
        let document = PolicyDocument {
            image_allowlist: vec!["docker.io".into()],
            egress_baseline: vec!["10.0.0.0/8".into()],
            quota_max: QuotaMaxDocument { requests_cpu: Some("4".into()), requests_memory: None },
            ..PolicyDocument::default()
        };
        let json = serde_json::to_value(&document).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "imageAllowlist": ["docker.io"],
                "egressBaseline": ["10.0.0.0/8"],
                "quotaMax": {"requestsCPU": "4"}
            })
        );
        let empty: PolicyDocument =
            serde_json::from_str(r#"{"imageAllowlist":[],"egressBaseline":[],"quotaMax":{}}"#).unwrap();
        assert_eq!(empty, PolicyDocument::default());
    }
}
