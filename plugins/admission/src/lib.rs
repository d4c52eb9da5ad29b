//! kubeop's built-in admission review (the `admission` slot's default).
//!
//! For workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) being created
//! or updated, it denies:
//!
//! - containers, init containers and ephemeral containers whose image comes from a registry
//!   outside the platform's image allowlist (when the allowlist is not empty);
//! - privileged containers (`securityContext.privileged: true`);
//! - pods sharing the node's network, PID or IPC namespace (`hostNetwork`, `hostPID`,
//!   `hostIPC`);
//! - `hostPath` volumes.
//!
//! Images tagged `latest`, or with neither a tag nor a digest, get a warning. Everything else,
//! including objects it cannot make sense of, is allowed: Kubernetes' own validation rejects
//! malformed objects. Only a `review` that is not JSON at all is denied. It never patches.

use registry_match::{docker_hub, same_registry};

wit_bindgen::generate!({
    world: "admission",
    path: "../../wit",
});

use kubeop::plugin::host::{Level, log};
use serde_json::Value;

struct Admission;

impl Guest for Admission {
    fn review(request: AdmissionRequest) -> AdmissionResponse {
        let response = review(&request.review, &request.policy.image_allowlist);
        if let Some(message) = response.message.as_deref().filter(|_| !response.allowed) {
            log(Level::Debug, &format!("denied: {message}"));
        }
        response
    }
}

export!(Admission);

fn review(review: &str, allowlist: &[String]) -> AdmissionResponse {
    let request: Value = match serde_json::from_str(review) {
        Ok(request) => request,
        Err(err) => {
            return AdmissionResponse {
                allowed: false,
                message: Some(format!("kubeop admission: the admission review is not valid JSON: {err}")),
                warnings: vec![],
                patch: None,
            };
        }
    };
    let mut findings = Findings::default();
    if let Some(spec) = pod_spec(&request) {
        check_pod_spec(spec, allowlist, &mut findings);
    }
    let allowed = findings.denials.is_empty();
    AdmissionResponse {
        allowed,
        message: (!allowed).then(|| findings.denials.join("; ")),
        warnings: findings.warnings,
        patch: None,
    }
}

#[derive(Default)]
struct Findings {
    denials: Vec<String>,
    warnings: Vec<String>,
}

/// The pod spec of a workload being created or updated, `None` for anything else.
fn pod_spec(request: &Value) -> Option<&Value> {
    // DELETE and CONNECT carry no new object to review.
    let operation = request.get("operation").and_then(Value::as_str).unwrap_or("");
    if operation.eq_ignore_ascii_case("DELETE") || operation.eq_ignore_ascii_case("CONNECT") {
        return None;
    }
    // Subresources (status, scale, …) do not change the pod spec, except ephemeral containers,
    // which are added through one.
    match request.get("subResource").and_then(Value::as_str) {
        None | Some("") | Some("ephemeralcontainers") => {}
        Some(_) => return None,
    }
    let object = request.get("object").filter(|o| o.is_object())?;
    // `kind` is the GroupVersionKind of the request; fall back on the object's own `kind`.
    let (group, kind) = match request.get("kind") {
        Some(gvk @ Value::Object(_)) => {
            (gvk.get("group").and_then(Value::as_str), gvk.get("kind").and_then(Value::as_str)?)
        }
        _ => {
            let api_version = object.get("apiVersion").and_then(Value::as_str);
            let group = api_version.map(|v| v.rsplit_once('/').map_or("", |(group, _)| group));
            (group, object.get("kind").and_then(Value::as_str)?)
        }
    };
    let (expected_group, path): (&[&str], &[&str]) = match kind {
        "Pod" => (&[""], &["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            (&["apps", "extensions"], &["spec", "template", "spec"])
        }
        "Job" => (&["batch"], &["spec", "template", "spec"]),
        "CronJob" => (&["batch"], &["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => return None,
    };
    // A custom resource that happens to be called `Job` is not a Job.
    if group.is_some_and(|group| !expected_group.contains(&group)) {
        return None;
    }
    path.iter().try_fold(object, |value, key| value.get(key)).filter(|spec| spec.is_object())
}

fn check_pod_spec(spec: &Value, allowlist: &[String], findings: &mut Findings) {
    for (field, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
        ("ephemeralContainers", "ephemeral container"),
    ] {
        let Some(containers) = spec.get(field).and_then(Value::as_array) else { continue };
        for container in containers {
            check_container(container, what, allowlist, findings);
        }
    }
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(field).and_then(Value::as_bool) == Some(true) {
            findings.denials.push(format!("{field} is not allowed"));
        }
    }
    if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
        for volume in volumes.iter().filter(|volume| volume.get("hostPath").is_some_and(|h| !h.is_null())) {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
            findings.denials.push(format!("volume \"{name}\" is a hostPath volume, which is not allowed"));
        }
    }
}

fn check_container(container: &Value, what: &str, allowlist: &[String], findings: &mut Findings) {
    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
    if let Some(image) = container.get("image").and_then(Value::as_str).filter(|i| !i.is_empty()) {
        let image = Image::parse(image);
        if !allowlist.is_empty() && !allowlist.iter().any(|entry| same_registry(image.registry, entry)) {
            findings.denials.push(format!(
                "{what} \"{name}\": registry {} of image {} is not in the image allowlist ({})",
                image.registry,
                image.text,
                allowlist.join(", ")
            ));
        }
        match (image.tag, image.digest) {
            (Some("latest"), _) => findings.warnings.push(format!(
                "{what} \"{name}\": image {} uses the tag latest; pin a version tag or a digest",
                image.text
            )),
            (None, None) => findings.warnings.push(format!(
                "{what} \"{name}\": image {} has neither a tag nor a digest, so it pulls latest; pin a version tag or a digest",
                image.text
            )),
            _ => {}
        }
    }
    let privileged = container.get("securityContext").and_then(|sc| sc.get("privileged"));
    if privileged.and_then(Value::as_bool) == Some(true) {
        findings.denials.push(format!("{what} \"{name}\" is privileged, which is not allowed"));
    }
}

/// An image reference as far as this policy cares, split the way Docker does.
#[derive(Debug, PartialEq)]
struct Image<'a> {
    text: &'a str,
    registry: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Image<'a> {
    fn parse(text: &'a str) -> Self {
        let text = text.trim();
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        // The first path component is a registry when it looks like a host: it has a `.` or a
        // `:` (a port), or is `localhost`. Otherwise the image is on Docker Hub.
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
            _ => ("docker.io", name),
        };
        let registry = docker_hub(registry);
        // The tag follows the last `:` of the last path component (a registry's port is in the
        // first component, which `path` no longer has).
        let last = path.rsplit('/').next().unwrap_or(path);
        let tag = last.rsplit_once(':').map(|(_, tag)| tag);
        Image { text, registry, tag, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    fn request(kind: (&str, &str), operation: &str, object: Value) -> String {
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
            "namespace": "t-acme-web",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": null,
        })
        .to_string()
    }

    fn pod(spec: Value) -> String {
        request(("", "Pod"), "CREATE", json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}))
    }

    #[test]
    fn image_parsing_follows_docker() {
        let parse = |s| {
            let i = Image::parse(s);
            (i.registry, i.tag, i.digest)
        };
        assert_eq!(parse("nginx"), ("docker.io", None, None));
        assert_eq!(parse("nginx:1.27"), ("docker.io", Some("1.27"), None));
        assert_eq!(parse("acme/api:v2"), ("docker.io", Some("v2"), None));
        assert_eq!(parse("ghcr.io/acme/api"), ("ghcr.io", None, None));
        assert_eq!(parse("localhost/api:1"), ("localhost", Some("1"), None));
        assert_eq!(parse("localhost:5000/api"), ("localhost:5000", None, None));
        assert_eq!(parse("registry:5000/api:3"), ("registry:5000", Some("3"), None));
        assert_eq!(parse("index.docker.io/library/nginx:latest"), ("docker.io", Some("latest"), None));
        assert_eq!(parse("ghcr.io/a/b@sha256:abc"), ("ghcr.io", None, Some("sha256:abc")));
        assert_eq!(parse("ghcr.io/a/b:1@sha256:abc"), ("ghcr.io", Some("1"), Some("sha256:abc")));
    }

    #[test]
    fn a_clean_pod_is_allowed_without_warnings() {
        let response = review(&pod(json!({"containers": [{"name": "web", "image": "nginx:1.27"}]})), &[]);
        assert!(response.allowed);
        assert_eq!(response.message, None);
        assert!(response.warnings.is_empty());
        assert_eq!(response.patch, None);
    }

    #[test]
    fn registries_outside_the_allowlist_are_denied_in_every_container_list() {
        let spec = json!({
            "initContainers": [{"name": "init", "image": "evil.io/x:1"}],
            "containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "ghcr.io/a/b:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "localhost:5000/dbg:1"}],
        });
        let response = review(&pod(spec), &allow(&["docker.io", "ghcr.io"]));
        assert!(!response.allowed);
        let message = response.message.unwrap();
        assert!(message.contains("init container \"init\": registry evil.io"), "{message}");
        assert!(message.contains("ephemeral container \"debug\": registry localhost:5000"), "{message}");
        assert!(message.contains("(docker.io, ghcr.io)"), "{message}");
        assert!(!message.contains("\"web\"") && !message.contains("\"side\""), "{message}");
    }

    #[test]
    fn privileged_and_host_namespaces_and_host_path_are_denied() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true, "hostIPC": false,
            "containers": [{"name": "web", "image": "nginx:1", "securityContext": {"privileged": true}}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}],
        });
        let response = review(&pod(spec), &[]);
        assert!(!response.allowed);
        let message = response.message.unwrap();
        assert!(message.contains("container \"web\" is privileged"), "{message}");
        assert!(message.contains("hostNetwork is not allowed"), "{message}");
        assert!(message.contains("hostPID is not allowed"), "{message}");
        assert!(!message.contains("hostIPC"), "{message}");
        assert!(message.contains("volume \"root\" is a hostPath volume"), "{message}");
        assert!(!message.contains("\"data\""), "{message}");
    }

    #[test]
    fn latest_and_untagged_images_only_warn() {
        let spec = json!({"containers": [
            {"name": "a", "image": "nginx:latest"},
            {"name": "b", "image": "nginx"},
            {"name": "c", "image": "nginx@sha256:abc"},
        ]});
        let response = review(&pod(spec), &[]);
        assert!(response.allowed);
        assert_eq!(response.warnings.len(), 2, "{:?}", response.warnings);
        assert!(response.warnings[0].contains("\"a\"") && response.warnings[0].contains("latest"));
        assert!(response.warnings[1].contains("\"b\"") && response.warnings[1].contains("neither a tag"));
    }

    #[test]
    fn workload_templates_are_found() {
        let bad = json!({"hostNetwork": true, "containers": [{"name": "w", "image": "nginx:1"}]});
        let template = json!({"spec": {"template": {"spec": bad.clone()}}});
        for (group, kind) in [
            ("apps", "Deployment"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("apps", "ReplicaSet"),
            ("batch", "Job"),
        ] {
            let response = review(&request((group, kind), "UPDATE", template.clone()), &[]);
            assert!(!response.allowed, "{kind}");
        }
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": bad}}}}});
        assert!(!review(&request(("batch", "CronJob"), "CREATE", cron), &[]).allowed);
    }

    #[test]
    fn everything_else_is_allowed() {
        let bad = json!({"spec": {"hostNetwork": true}});
        // DELETE, other kinds, a same-named kind in another group, a status update.
        assert!(review(&request(("", "Pod"), "DELETE", bad.clone()), &[]).allowed);
        assert!(review(&request(("", "ConfigMap"), "CREATE", bad.clone()), &[]).allowed);
        let job = json!({"spec": {"template": {"spec": {"hostNetwork": true}}}});
        assert!(review(&request(("example.com", "Job"), "CREATE", job), &[]).allowed);
        let mut status: Value = serde_json::from_str(&request(("", "Pod"), "UPDATE", bad)).unwrap();
        status["subResource"] = json!("status");
        assert!(review(&status.to_string(), &[]).allowed);
        // Objects that are not what they should be.
        assert!(review(&request(("", "Pod"), "CREATE", json!(null)), &[]).allowed);
        assert!(review(&request(("", "Pod"), "CREATE", json!({"spec": 3})), &[]).allowed);
        assert!(review(&request(("apps", "Deployment"), "CREATE", json!({"spec": {}})), &[]).allowed);
        assert!(review(r#"{"kind": "Pod"}"#, &[]).allowed);
    }

    #[test]
    fn the_object_kind_is_used_without_a_request_kind() {
        let review_json = json!({
            "operation": "CREATE",
            "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                       "spec": {"template": {"spec": {"hostPID": true}}}},
        });
        assert!(!review(&review_json.to_string(), &[]).allowed);
    }

    #[test]
    fn a_review_that_is_not_json_is_denied() {
        let response = review("{not json", &[]);
        assert!(!response.allowed);
        assert!(response.message.unwrap().contains("not valid JSON"));
    }
}
