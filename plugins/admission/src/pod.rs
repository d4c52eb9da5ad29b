//! Rules for a pod spec, wherever it sits (a Pod, or a workload's pod template): images from
//! allowed registries, and nothing that reaches into the node.

use crate::finding::{FieldPath, Findings, Rule};
use crate::image::Image;
use registry_match::same_registry;
use serde_json::Value;

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

const HOST_NAMESPACES: [(&str, &str); 3] =
    [("hostNetwork", "network"), ("hostPID", "process ID"), ("hostIPC", "IPC")];

/// Checks the pod spec at `path`; `spec` is that value.
pub fn check(spec: &Value, path: &FieldPath, allowlist: &[String], findings: &mut Findings) {
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else { continue };
        for (index, container) in containers.iter().enumerate() {
            check_container(container, &path.field(list).index(index), allowlist, findings);
        }
    }
    for (field, namespace) in HOST_NAMESPACES {
        if is_true(spec.get(field)) {
            let reason = format!("sharing the node's {namespace} namespace is not allowed");
            findings.add(Rule::HostNamespaces, path.field(field), reason);
        }
    }
    let volumes = spec.get("volumes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (index, volume) in volumes.iter().enumerate() {
        if volume.get("hostPath").is_some_and(|host_path| !host_path.is_null()) {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
            let reason = format!("volume \"{name}\" mounts a directory of the node, which is not allowed");
            findings.add(Rule::HostPath, path.field("volumes").index(index).field("hostPath"), reason);
        }
    }
}

fn check_container(container: &Value, path: &FieldPath, allowlist: &[String], findings: &mut Findings) {
    if let Some(image) =
        container.get("image").and_then(Value::as_str).filter(|image| !image.trim().is_empty())
    {
        check_image(&Image::parse(image), &path.field("image"), allowlist, findings);
    }
    let security = path.field("securityContext");
    let security_context = container.get("securityContext");
    if is_true(security_context.and_then(|sc| sc.get("privileged"))) {
        findings.add(Rule::Privileged, security.field("privileged"), "privileged containers are not allowed");
    }
    if is_true(security_context.and_then(|sc| sc.get("allowPrivilegeEscalation"))) {
        findings.add(
            Rule::PrivilegeEscalation,
            security.field("allowPrivilegeEscalation"),
            "containers may not allow privilege escalation",
        );
    }
}

fn check_image(image: &Image, path: &FieldPath, allowlist: &[String], findings: &mut Findings) {
    if !allowlist.is_empty() && !allowlist.iter().any(|entry| same_registry(image.registry, entry)) {
        let reason = format!(
            "registry {} of image {} is not in the image allowlist ({})",
            image.registry,
            image.text,
            allowlist.join(", ")
        );
        findings.add(Rule::ImageRegistry, path.clone(), reason);
    }
    let unpinned = match (image.tag, image.digest) {
        (Some("latest"), _) => "uses the tag latest",
        (None, None) => "has neither a tag nor a digest, so it pulls latest",
        _ => return,
    };
    let reason = format!("image {} {unpinned}; pin a version tag or a digest", image.text);
    findings.add(Rule::ImageTag, path.clone(), reason);
}

/// Only a JSON `true` counts: anything else is for Kubernetes' validation to refuse.
fn is_true(value: Option<&Value>) -> bool {
    value.and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn findings(spec: Value, allowlist: &[&str]) -> Vec<String> {
        let allowlist: Vec<String> = allowlist.iter().map(|entry| entry.to_string()).collect();
        let mut findings = Findings::default();
        check(&spec, &FieldPath::root().field("spec"), &allowlist, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_clean_pod_spec_has_no_findings() {
        let spec = json!({
            "containers": [{"name": "web", "image": "ghcr.io/acme/web:1.2",
                            "securityContext": {"privileged": false, "allowPrivilegeEscalation": false}}],
            "hostNetwork": false,
            "volumes": [{"name": "cache", "emptyDir": {}}],
        });
        assert_eq!(findings(spec, &["ghcr.io"]), Vec::<String>::new());
    }

    #[test]
    fn images_from_registries_outside_the_allowlist_are_found_in_every_container_list() {
        let spec = json!({
            "initContainers": [{"name": "init", "image": "evil.io/x:1"}],
            "containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "evil.io/x:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "localhost:5000/dbg:1"}],
        });
        assert_eq!(
            findings(spec, &["docker.io", "ghcr.io"]),
            [
                "[image-registry] spec.initContainers[0].image: registry evil.io of image evil.io/x:1 is not in the image allowlist (docker.io, ghcr.io)",
                "[image-registry] spec.containers[1].image: registry evil.io of image evil.io/x:1 is not in the image allowlist (docker.io, ghcr.io)",
                "[image-registry] spec.ephemeralContainers[0].image: registry localhost:5000 of image localhost:5000/dbg:1 is not in the image allowlist (docker.io, ghcr.io)",
            ]
        );
    }

    #[test]
    fn an_empty_allowlist_allows_every_registry() {
        let spec = json!({"containers": [{"name": "web", "image": "evil.io/x:1"}]});
        assert_eq!(findings(spec, &[]), Vec::<String>::new());
    }

    #[test]
    fn latest_and_untagged_images_are_found_by_the_tag_rule() {
        let spec = json!({"containers": [
            {"name": "a", "image": "nginx:latest"},
            {"name": "b", "image": "nginx"},
            {"name": "c", "image": "nginx@sha256:abc"},
        ]});
        assert_eq!(
            findings(spec, &[]),
            [
                "[image-tag] spec.containers[0].image: image nginx:latest uses the tag latest; pin a version tag or a digest",
                "[image-tag] spec.containers[1].image: image nginx has neither a tag nor a digest, so it pulls latest; pin a version tag or a digest",
            ]
        );
    }

    #[test]
    fn privileged_containers_are_found() {
        let spec = json!({"containers": [
            {"name": "a", "image": "nginx:1", "securityContext": {"privileged": true}},
        ]});
        assert_eq!(
            findings(spec, &[]),
            [
                "[privileged] spec.containers[0].securityContext.privileged: privileged containers are not allowed"
            ]
        );
    }

    #[test]
    fn explicit_privilege_escalation_is_found() {
        let spec = json!({"initContainers": [
            {"name": "a", "image": "nginx:1", "securityContext": {"allowPrivilegeEscalation": false}},
            {"name": "b", "image": "nginx:1", "securityContext": {"allowPrivilegeEscalation": true}},
        ]});
        assert_eq!(
            findings(spec, &[]),
            [
                "[privilege-escalation] spec.initContainers[1].securityContext.allowPrivilegeEscalation: containers may not allow privilege escalation"
            ]
        );
    }

    #[test]
    fn host_namespaces_are_found() {
        let spec = json!({"hostNetwork": true, "hostPID": true, "hostIPC": false, "containers": []});
        assert_eq!(
            findings(spec, &[]),
            [
                "[host-namespaces] spec.hostNetwork: sharing the node's network namespace is not allowed",
                "[host-namespaces] spec.hostPID: sharing the node's process ID namespace is not allowed",
            ]
        );
        assert_eq!(findings(json!({"hostIPC": true}), &[]).len(), 1);
    }

    #[test]
    fn host_path_volumes_are_found() {
        let spec = json!({"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "x"}},
            {"name": "root", "hostPath": {"path": "/"}},
        ]});
        assert_eq!(
            findings(spec, &[]),
            [
                "[host-path] spec.volumes[2].hostPath: volume \"root\" mounts a directory of the node, which is not allowed"
            ]
        );
    }

    #[test]
    fn fields_of_an_unexpected_shape_are_left_to_kubernetes() {
        let spec = json!({
            "containers": {"name": "web"},
            "initContainers": [3, {"image": 7, "securityContext": {"privileged": "true"}}],
            "hostNetwork": "yes",
            "volumes": "none",
        });
        assert_eq!(findings(spec, &["ghcr.io"]), Vec::<String>::new());
    }
}
