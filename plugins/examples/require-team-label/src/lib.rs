//! Example admission review: every Deployment must say which team owns it.
//!
//! kubeop asks the admission plugin about everything created or changed in the cluster (it is
//! a Kubernetes admission webhook). This one denies a Deployment created or updated without a
//! non-empty `team` label:
//!
//! ```yaml
//! metadata:
//!   labels:
//!     team: payments   # required
//! ```
//!
//! Everything else is allowed. Its one rule is called `team-label`: an operator who lists
//! `team-label` in the admission policy's `audit-rules` turns its denials into warnings, to
//! see what it would refuse before enforcing it.
//!
//! Replacing the admission plugin replaces the built-in review (image allowlist, privileged
//! pods, hosts, …): copy the built-in rules you want to keep.
//!
//! To write your own review, copy this crate, change `decide`, and build it:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! The component is `target/wasm32-wasip2/release/require_team_label.wasm`.
//!
//! Plugins are pure functions of their request: the host gives them no clock, randomness,
//! environment, files or network, and stops a call that runs too long or uses too much memory.

// Generate the Rust bindings for the `platform-admission` world of kubeop's WIT package. This
// gives us:
// - `Guest`, the trait our plugin implements (one method per export: `admit`);
// - `AdmitRequest` and `AdmissionResponse`, the types of that export;
// - `kubeop::plugin::host::log`, the one function the host offers us.
// `path` is relative to this crate's Cargo.toml; point it at your copy of `wit/`.
wit_bindgen::generate!({
    world: "platform-admission",
    path: "../../../wit",
});

use kubeop::plugin::host::{Level, log};
use serde_json::Value;

/// Our rule's id: it starts every finding, and operators name it in `audit-rules`.
const RULE: &str = "team-label";

/// The plugin. It has no state: each call gets everything it needs in its request.
struct RequireTeamLabel;

impl Guest for RequireTeamLabel {
    fn admit(request: AdmitRequest) -> AdmissionResponse {
        let response = decide(&request);
        // Logging is allowed but should be rare: the host keeps at most 64 lines per call.
        if let Some(message) = response.message.as_deref() {
            log(Level::Info, &format!("denied: {message}"));
        }
        response
    }
}

// Export `RequireTeamLabel` as the component's implementation of the world.
export!(RequireTeamLabel);

/// The review itself, kept apart from the bindings so that `cargo test` can run it natively.
fn decide(request: &AdmitRequest) -> AdmissionResponse {
    // `review` is the AdmissionReview's `request` object, as JSON text, exactly as the API
    // server sent it: `kind`, `operation`, `subResource`, `object`, `oldObject`, `userInfo`, …
    let Ok(review) = serde_json::from_str::<Value>(&request.review) else {
        return deny("the admission review is not valid JSON".into());
    };

    // 1. Only Deployments being created or updated. `kind` is the request's group, version
    //    and kind; checking the group too means a custom resource that happens to be called
    //    `Deployment` is left alone. Subresources (`status`, `scale`) are left alone too:
    //    controllers update them, and they do not change the labels.
    let is_deployment = review.pointer("/kind/group").and_then(Value::as_str) == Some("apps")
        && review.pointer("/kind/kind").and_then(Value::as_str) == Some("Deployment");
    let operation = review.get("operation").and_then(Value::as_str).unwrap_or("");
    let subresource = review.get("subResource").and_then(Value::as_str).unwrap_or("");
    if !is_deployment || !matches!(operation, "CREATE" | "UPDATE") || !subresource.is_empty() {
        return allow(vec![]);
    }

    // 2. The rule: a non-empty `metadata.labels.team`.
    let team = review.pointer("/object/metadata/labels/team").and_then(Value::as_str).unwrap_or("");
    if !team.trim().is_empty() {
        return allow(vec![]);
    }

    // 3. Say what is wrong the way kubeop's built-in review does:
    //    `[<rule>] <path of the field>: <reason>`.
    let finding = format!("[{RULE}] metadata.labels.team: every Deployment needs a team label");

    // 4. In audit mode the denial becomes a warning (kubectl prints it) and the Deployment is
    //    allowed.
    if request.admission.audit_rules.iter().any(|rule| rule == RULE) {
        return allow(vec![format!("audit: {finding}")]);
    }
    deny(finding)
}

fn allow(warnings: Vec<String>) -> AdmissionResponse {
    // `patch` could carry a JSON Patch (RFC 6902) to change the object; we change nothing.
    AdmissionResponse { allowed: true, message: None, warnings, patch: None }
}

fn deny(message: String) -> AdmissionResponse {
    AdmissionResponse { allowed: false, message: Some(message), warnings: vec![], patch: None }
}

// Unit tests run natively: `cargo test` (without `--target`). They may not call `log`, which
// exists only inside the host.
#[cfg(test)]
mod tests {
    use super::*;
    use kubeop::plugin::types::{AdmissionPolicy, PlatformPolicy};
    use serde_json::json;

    const DENIAL: &str = "[team-label] metadata.labels.team: every Deployment needs a team label";

    /// A request for `object`, of kind `group`/`kind`, as the host would pass it.
    fn request(
        group: &str,
        kind: &str,
        operation: &str,
        object: Value,
        audit_rules: &[&str],
    ) -> AdmitRequest {
        let review = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "namespace": "kubeop-acme-web",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
        });
        AdmitRequest {
            review: review.to_string(),
            tenant_id: Some("t_1".into()),
            project_id: Some("p_1".into()),
            policy: PlatformPolicy {
                image_allowlist: vec![],
                egress_baseline: vec![],
                quota_max_requests_cpu: None,
                quota_max_requests_memory: None,
            },
            admission: AdmissionPolicy {
                allowed_hosts: vec![],
                allowed_service_types: vec![],
                audit_rules: audit_rules.iter().map(|rule| rule.to_string()).collect(),
            },
            host_claims: vec![],
        }
    }

    fn deployment(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "labels": labels}, "spec": {}})
    }

    #[test]
    fn a_deployment_with_a_team_is_allowed() {
        let response =
            decide(&request("apps", "Deployment", "CREATE", deployment(json!({"team": "payments"})), &[]));
        assert!(response.allowed);
        assert!(response.warnings.is_empty());
    }

    #[test]
    fn a_deployment_without_a_team_is_denied() {
        for labels in [json!({"app": "web"}), json!({"team": ""}), json!(null)] {
            for operation in ["CREATE", "UPDATE"] {
                let response =
                    decide(&request("apps", "Deployment", operation, deployment(labels.clone()), &[]));
                assert!(!response.allowed, "{operation} {labels}");
                assert_eq!(response.message.as_deref(), Some(DENIAL));
            }
        }
    }

    #[test]
    fn in_audit_mode_a_missing_team_only_warns() {
        let response =
            decide(&request("apps", "Deployment", "CREATE", deployment(json!({})), &["team-label"]));
        assert!(response.allowed);
        assert_eq!(response.warnings, [format!("audit: {DENIAL}")]);
    }

    #[test]
    fn everything_else_is_allowed() {
        let unlabelled = deployment(json!({}));
        assert!(decide(&request("apps", "Deployment", "DELETE", unlabelled.clone(), &[])).allowed);
        assert!(decide(&request("apps", "StatefulSet", "CREATE", unlabelled.clone(), &[])).allowed);
        assert!(decide(&request("example.com", "Deployment", "CREATE", unlabelled.clone(), &[])).allowed);
        let mut status = request("apps", "Deployment", "UPDATE", unlabelled, &[]);
        let mut review: Value = serde_json::from_str(&status.review).unwrap();
        review["subResource"] = json!("status");
        status.review = review.to_string();
        assert!(decide(&status).allowed);
    }
}
