//! kubeop's built-in admission review (the admission slot's default, world
//! `platform-admission`).
//!
//! It reviews what is created or updated in the cluster and answers with findings, each shown
//! as `[<rule>] <path>: <reason>`, the path a field of the object
//! (`spec.template.spec.containers[1].image`). The rules, by id:
//!
//! | rule                   | reviews                                                          |
//! |------------------------|------------------------------------------------------------------|
//! | `image-registry`       | images of Pods and workload pod templates come from the image allowlist |
//! | `image-tag`            | (warning only) images tagged `latest`, or neither tagged nor pinned |
//! | `privileged`           | no privileged container                                           |
//! | `privilege-escalation` | no container with `allowPrivilegeEscalation: true`                |
//! | `host-namespaces`      | no `hostNetwork`, `hostPID` or `hostIPC`                          |
//! | `host-path`            | no `hostPath` volume                                              |
//! | `egress-baseline`      | NetworkPolicy `ipBlock` egress stays inside the egress baseline   |
//! | `quota-max`            | ResourceQuotas cap CPU and memory requests, within the maximums   |
//! | `app-namespace`        | an App lives in its project's namespace and names that project    |
//! | `project-tenant`       | a Project names its tenant                                        |
//! | `allowed-hosts`        | Ingress and HTTPRoute hosts are among the allowed hosts           |
//! | `host-collision`       | no host another tenant or the platform already serves            |
//! | `service-type`         | NodePort, LoadBalancer and ExternalName Services only if allowed  |
//!
//! Denials are joined with `; ` into the message. A rule named in `admission.audit-rules` warns
//! (`audit: [<rule>] …`) instead of denying.
//!
//! DELETE, CONNECT and subresources other than `ephemeralcontainers` are not reviewed, nor are
//! other kinds. Objects of an unexpected shape are allowed: Kubernetes' own validation refuses
//! them. Only a review that is not JSON is denied outright.
//!
//! Every object created or updated (not through a subresource) is patched to carry the label
//! `app.kubeop.io/managed-by: kubeop`, denied or not: the host decides what to use.
//!
//! Everything is a pure function of the request, so the unit tests run natively.

mod cidr;
mod finding;
mod hosts;
mod image;
mod network_policy;
mod paas;
mod patch;
mod pod;
mod quantity;
mod resource_quota;
mod review;
mod routes;
mod service;

wit_bindgen::generate!({
    world: "platform-admission",
    path: "../../wit",
});

use finding::{FieldPath, Finding, Findings};
use kubeop::plugin::host::{Level, log};
use review::{Kind, Review};
use serde_json::Value;

struct Admission;

impl Guest for Admission {
    fn admit(request: AdmitRequest) -> AdmissionResponse {
        let response = admit(&request);
        if let Some(message) = response.message.as_deref().filter(|_| !response.allowed) {
            log(Level::Debug, &format!("denied: {message}"));
        }
        response
    }
}

export!(Admission);

fn admit(request: &AdmitRequest) -> AdmissionResponse {
    let review: Value = match serde_json::from_str(&request.review) {
        Ok(review) => review,
        Err(err) => {
            return AdmissionResponse {
                allowed: false,
                message: Some(format!("kubeop admission: the admission review is not valid JSON: {err}")),
                warnings: vec![],
                patch: None,
            };
        }
    };
    let Some(review) = Review::read(&review) else {
        return respond(vec![], &[], None);
    };
    let findings = review.kind.map(|kind| check(kind, review.object, request)).unwrap_or_default();
    let patch = if review.through_subresource { None } else { patch::managed_by(review.object) };
    respond(findings.into_vec(), &request.admission.audit_rules, patch)
}

/// Runs the rules for the object's kind.
fn check(kind: Kind, object: &Value, request: &AdmitRequest) -> Findings {
    let mut findings = Findings::default();
    let (policy, admission) = (&request.policy, &request.admission);
    match kind {
        Kind::Pod | Kind::Workload | Kind::CronJob => {
            let fields = kind.pod_spec_fields().unwrap_or_default();
            let spec = fields.iter().try_fold(object, |value, field| value.get(field));
            if let Some(spec) = spec.filter(|spec| spec.is_object()) {
                pod::check(spec, &FieldPath::root().fields(fields), &policy.image_allowlist, &mut findings);
            }
        }
        Kind::NetworkPolicy => network_policy::check_egress(object, &policy.egress_baseline, &mut findings),
        Kind::ResourceQuota => resource_quota::check_maximums(
            object,
            policy.quota_max_requests_cpu.as_deref(),
            policy.quota_max_requests_memory.as_deref(),
            &mut findings,
        ),
        Kind::Service => service::check_type(object, &admission.allowed_service_types, &mut findings),
        Kind::Ingress | Kind::HttpRoute => {
            let served = if kind == Kind::Ingress {
                routes::ingress_hosts(object)
            } else {
                routes::http_route_hosts(object)
            };
            routes::check_allowed_hosts(&served, &admission.allowed_hosts, &mut findings);
            routes::check_collisions(
                &served,
                &request.host_claims,
                request.tenant_id.as_deref(),
                &mut findings,
            );
        }
        Kind::App => paas::check_app(
            object,
            request.tenant_id.as_deref(),
            request.project_id.as_deref(),
            &mut findings,
        ),
        Kind::Project => paas::check_project(object, &mut findings),
    }
    findings
}

/// Denials make the message; warnings, and denials of audited rules, the warnings.
fn respond(findings: Vec<Finding>, audit_rules: &[String], patch: Option<String>) -> AdmissionResponse {
    let audited = |finding: &Finding| audit_rules.iter().any(|rule| rule.trim() == finding.rule.id());
    let mut denials = Vec::new();
    let mut warnings = Vec::new();
    for finding in findings {
        if finding.rule.warns_only() {
            warnings.push(finding.to_string());
        } else if audited(&finding) {
            warnings.push(format!("audit: {finding}"));
        } else {
            denials.push(finding.to_string());
        }
    }
    let allowed = denials.is_empty();
    AdmissionResponse { allowed, message: (!allowed).then(|| denials.join("; ")), warnings, patch }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeop::plugin::types::{AdmissionPolicy, HostClaim, PlatformPolicy};
    use serde_json::json;

    const MANAGED_PATCH: &str =
        r#"[{"op":"add","path":"/metadata/labels","value":{"app.kubeop.io/managed-by":"kubeop"}}]"#;

    fn admit_request(review: &str) -> AdmitRequest {
        AdmitRequest {
            review: review.into(),
            tenant_id: Some("t_01".into()),
            project_id: Some("p_01".into()),
            policy: PlatformPolicy {
                image_allowlist: vec!["docker.io".into(), "ghcr.io".into()],
                egress_baseline: vec!["10.0.0.0/8".into()],
                quota_max_requests_cpu: Some("4".into()),
                quota_max_requests_memory: Some("8Gi".into()),
            },
            admission: AdmissionPolicy {
                allowed_hosts: vec![],
                allowed_service_types: vec![],
                audit_rules: vec![],
            },
            host_claims: vec![],
        }
    }

    /// An AdmissionReview `request` as the API server sends it.
    fn review(group: &str, kind: &str, operation: &str, object: Value) -> String {
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "namespace": "kubeop-acme-web",
            "name": "web",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        })
        .to_string()
    }

    fn deployment(pod_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "kubeop-acme-web"},
               "spec": {"template": {"spec": pod_spec}}})
    }

    #[test]
    fn a_clean_workload_is_allowed_and_labelled() {
        let object = deployment(json!({"containers": [{"name": "web", "image": "ghcr.io/acme/web:1.2"}]}));
        let response = admit(&admit_request(&review("apps", "Deployment", "CREATE", object)));
        assert!(response.allowed);
        assert_eq!(response.message, None);
        assert!(response.warnings.is_empty(), "{:?}", response.warnings);
        assert_eq!(response.patch.as_deref(), Some(MANAGED_PATCH));
    }

    #[test]
    fn every_denial_is_in_the_message_and_the_patch_comes_anyway() {
        let object = deployment(json!({
            "hostNetwork": true,
            "containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "evil.io/x:1"}],
        }));
        let response = admit(&admit_request(&review("apps", "Deployment", "UPDATE", object)));
        assert!(!response.allowed);
        assert_eq!(
            response.message.as_deref(),
            Some(
                "[image-registry] spec.template.spec.containers[1].image: registry evil.io of image evil.io/x:1 is not in the image allowlist (docker.io, ghcr.io); \
                 [host-namespaces] spec.template.spec.hostNetwork: sharing the node's network namespace is not allowed"
            )
        );
        assert_eq!(response.patch.as_deref(), Some(MANAGED_PATCH));
    }

    #[test]
    fn cron_jobs_are_reviewed_at_their_job_template() {
        let object = json!({"metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "run", "image": "nginx:1", "securityContext": {"privileged": true}}],
        }}}}}});
        let response = admit(&admit_request(&review("batch", "CronJob", "CREATE", object)));
        assert_eq!(
            response.message.as_deref(),
            Some(
                "[privileged] spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged: privileged containers are not allowed"
            )
        );
    }

    #[test]
    fn audited_rules_warn_instead_of_denying() {
        let object = json!({"metadata": {"name": "web"}, "spec": {
            "hostPID": true,
            "containers": [{"name": "web", "image": "evil.io/x:latest"}],
        }});
        let mut request = admit_request(&review("", "Pod", "CREATE", object));
        request.admission.audit_rules = vec!["image-registry".into(), "host-namespaces".into()];
        let response = admit(&request);
        assert!(response.allowed, "{:?}", response.message);
        assert_eq!(
            response.warnings,
            [
                "audit: [image-registry] spec.containers[0].image: registry evil.io of image evil.io/x:latest is not in the image allowlist (docker.io, ghcr.io)",
                "[image-tag] spec.containers[0].image: image evil.io/x:latest uses the tag latest; pin a version tag or a digest",
                "audit: [host-namespaces] spec.hostPID: sharing the node's process ID namespace is not allowed",
            ]
        );
    }

    #[test]
    fn an_audited_rule_does_not_excuse_the_others() {
        let object = json!({"spec": {"type": "LoadBalancer"}, "metadata": {"name": "web"}});
        let mut request = admit_request(&review("", "Service", "CREATE", object));
        request.admission.audit_rules = vec!["host-path".into()];
        let response = admit(&request);
        assert!(!response.allowed);
        assert!(response.message.unwrap().starts_with("[service-type] spec.type: "));
    }

    #[test]
    fn each_kind_reaches_its_rules() {
        let denied = |group: &str, kind: &str, object: Value| {
            let response = admit(&admit_request(&review(group, kind, "CREATE", object)));
            assert!(!response.allowed, "{kind} allowed");
            response.message.unwrap()
        };
        let policy = json!({"spec": {"egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}});
        assert!(denied("networking.k8s.io", "NetworkPolicy", policy).starts_with("[egress-baseline] "));
        let quota = json!({"spec": {"hard": {"requests.cpu": "5", "requests.memory": "1Gi"}}});
        assert!(
            denied("", "ResourceQuota", quota).starts_with("[quota-max] spec.hard[requests.cpu]: 5 is above")
        );
        let app = json!({"spec": {"projectRef": "p-02"}});
        assert!(
            denied("paas.kubeop.io", "App", app)
                .starts_with("[app-namespace] spec.projectRef: must be p-01,")
        );
        assert!(denied("paas.kubeop.io", "Project", json!({"spec": {}})).starts_with("[project-tenant] "));
        let service = json!({"spec": {"type": "NodePort"}});
        assert!(denied("", "Service", service).starts_with("[service-type] "));
    }

    #[test]
    fn routes_are_checked_against_allowed_hosts_and_claims() {
        let route =
            json!({"metadata": {"name": "shop"}, "spec": {"hostnames": ["shop.example.com", "evil.io"]}});
        let mut request = admit_request(&review("gateway.networking.k8s.io", "HTTPRoute", "CREATE", route));
        request.admission.allowed_hosts = vec!["*.example.com".into()];
        request.host_claims = vec![HostClaim {
            host: "shop.example.com".into(),
            tenant_id: Some("t_02".into()),
            namespace: "kubeop-other-shop".into(),
            object: "HTTPRoute/shop".into(),
        }];
        let response = admit(&request);
        assert_eq!(
            response.message.as_deref(),
            Some(
                "[allowed-hosts] spec.hostnames[1]: host evil.io is not in the allowed hosts (*.example.com); \
                 [host-collision] spec.hostnames[0]: shop.example.com is already served by another tenant"
            )
        );
        let ingress = json!({"spec": {"rules": [{"host": "shop.example.com"}]}});
        let mut request = admit_request(&review("networking.k8s.io", "Ingress", "CREATE", ingress));
        request.host_claims = vec![HostClaim {
            host: "*.example.com".into(),
            tenant_id: None,
            namespace: "ingress-system".into(),
            object: "Ingress/platform".into(),
        }];
        assert_eq!(
            admit(&request).message.as_deref(),
            Some("[host-collision] spec.rules[0].host: shop.example.com is already served by the platform")
        );
    }

    #[test]
    fn kinds_without_rules_are_allowed_and_labelled() {
        let object = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "data": {}});
        let response = admit(&admit_request(&review("", "ConfigMap", "CREATE", object)));
        assert!(response.allowed);
        assert_eq!(
            response.patch.as_deref(),
            Some(r#"[{"op":"add","path":"/metadata/labels/app.kubeop.io~1managed-by","value":"kubeop"}]"#)
        );
        let job = json!({"spec": {"template": {"spec": {"hostNetwork": true}}}});
        assert!(admit(&admit_request(&review("example.com", "Job", "CREATE", job))).allowed);
    }

    #[test]
    fn deletes_connects_and_subresources_are_allowed_unpatched() {
        let bad = json!({"metadata": {"name": "web"}, "spec": {"hostNetwork": true}});
        for operation in ["DELETE", "CONNECT"] {
            let response = admit(&admit_request(&review("", "Pod", operation, bad.clone())));
            assert!(response.allowed && response.patch.is_none(), "{operation}");
        }
        for subresource in ["status", "scale"] {
            let mut status: Value = serde_json::from_str(&review("", "Pod", "UPDATE", bad.clone())).unwrap();
            status["subResource"] = json!(subresource);
            let response = admit(&admit_request(&status.to_string()));
            assert!(response.allowed && response.patch.is_none(), "{subresource}");
        }
    }

    #[test]
    fn ephemeral_containers_are_reviewed_but_not_patched() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {
            "containers": [{"name": "web", "image": "nginx:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "evil.io/debug:1"}],
        }});
        let mut request: Value = serde_json::from_str(&review("", "Pod", "UPDATE", pod)).unwrap();
        request["subResource"] = json!("ephemeralcontainers");
        let response = admit(&admit_request(&request.to_string()));
        assert!(!response.allowed);
        assert!(
            response.message.unwrap().starts_with("[image-registry] spec.ephemeralContainers[0].image: ")
        );
        assert_eq!(response.patch, None);
    }

    #[test]
    fn dry_runs_are_decided_like_the_rest() {
        let object = json!({"spec": {"type": "LoadBalancer"}});
        let mut request: Value = serde_json::from_str(&review("", "Service", "CREATE", object)).unwrap();
        let wet = admit(&admit_request(&request.to_string()));
        request["dryRun"] = json!(true);
        let dry = admit(&admit_request(&request.to_string()));
        assert_eq!((dry.allowed, dry.message, dry.patch), (wet.allowed, wet.message, wet.patch));
    }

    #[test]
    fn objects_of_an_unexpected_shape_are_allowed() {
        for (group, kind, object) in [
            ("", "Pod", json!({"spec": 3})),
            ("apps", "Deployment", json!({"spec": {}})),
            ("networking.k8s.io", "NetworkPolicy", json!({"spec": {"egress": "all"}})),
            ("gateway.networking.k8s.io", "HTTPRoute", json!({"spec": null})),
        ] {
            assert!(admit(&admit_request(&review(group, kind, "CREATE", object))).allowed, "{kind}");
        }
        assert!(admit(&admit_request(r#"{"kind": "Pod"}"#)).allowed);
    }

    #[test]
    fn a_review_that_is_not_json_is_denied() {
        let response = admit(&admit_request("{not json"));
        assert!(!response.allowed);
        assert!(
            response
                .message
                .unwrap()
                .starts_with("kubeop admission: the admission review is not valid JSON: ")
        );
    }
}
