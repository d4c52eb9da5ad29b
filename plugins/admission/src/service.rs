//! The `service-type` rule: Services that open ports on the nodes, ask for a cloud load
//! balancer or alias an outside name need the platform's consent.

use crate::finding::{FieldPath, Findings, Rule};
use serde_json::Value;

/// The types that need consent; ClusterIP (the default) never does, and a type Kubernetes does
/// not know is its validation's to refuse.
const RESTRICTED_TYPES: [&str; 3] = ["NodePort", "LoadBalancer", "ExternalName"];

pub fn check_type(object: &Value, allowed_types: &[String], findings: &mut Findings) {
    let Some(service_type) = object.pointer("/spec/type").and_then(Value::as_str) else { return };
    if !RESTRICTED_TYPES.contains(&service_type)
        || allowed_types.iter().any(|allowed| allowed.trim() == service_type)
    {
        return;
    }
    let allowed = std::iter::once("ClusterIP")
        .chain(allowed_types.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    let reason = format!("Services of type {service_type} are not allowed (allowed: {allowed})");
    findings.add(Rule::ServiceType, FieldPath::root().fields(&["spec", "type"]), reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn findings(spec: Value, allowed: &[&str]) -> Vec<String> {
        let allowed: Vec<String> = allowed.iter().map(|entry| entry.to_string()).collect();
        let mut findings = Findings::default();
        check_type(&json!({"spec": spec}), &allowed, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_ip_services_are_always_allowed() {
        assert_eq!(findings(json!({"ports": [{"port": 80}]}), &[]), Vec::<String>::new());
        assert_eq!(findings(json!({"type": "ClusterIP"}), &[]), Vec::<String>::new());
    }

    #[test]
    fn restricted_types_are_allowed_when_listed() {
        assert_eq!(findings(json!({"type": "LoadBalancer"}), &["LoadBalancer"]), Vec::<String>::new());
        assert_eq!(
            findings(json!({"type": "NodePort"}), &["LoadBalancer", "NodePort"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn restricted_types_are_denied_otherwise() {
        assert_eq!(
            findings(json!({"type": "LoadBalancer"}), &[]),
            ["[service-type] spec.type: Services of type LoadBalancer are not allowed (allowed: ClusterIP)"]
        );
        assert_eq!(
            findings(json!({"type": "ExternalName", "externalName": "db.example.com"}), &["NodePort"]),
            [
                "[service-type] spec.type: Services of type ExternalName are not allowed (allowed: ClusterIP, NodePort)"
            ]
        );
    }
}
