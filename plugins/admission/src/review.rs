//! Reading the AdmissionReview `request`: which object it asks about, and what kind of object
//! that is.

use serde_json::Value;

/// kubeop's own API group.
pub const KUBEOP_GROUP: &str = "paas.kubeop.io";

/// An object being created or changed, as far as the review is concerned.
pub struct Review<'a> {
    /// `None` for kinds no rule looks at (they are still labelled).
    pub kind: Option<Kind>,
    pub object: &'a Value,
    /// Whether the change comes through a subresource (`ephemeralcontainers`, the only one
    /// reviewed): the object is then reviewed but not patched.
    pub through_subresource: bool,
}

impl<'a> Review<'a> {
    /// The object under review, or `None` when there is nothing to review: DELETE and CONNECT
    /// carry no new object, and subresources (`status`, `scale`, …) other than
    /// `ephemeralcontainers` do not change what the rules look at.
    pub fn read(request: &'a Value) -> Option<Self> {
        let operation = request.get("operation").and_then(Value::as_str).unwrap_or("");
        if operation.eq_ignore_ascii_case("DELETE") || operation.eq_ignore_ascii_case("CONNECT") {
            return None;
        }
        let through_subresource = match request.get("subResource").and_then(Value::as_str) {
            None | Some("") => false,
            Some("ephemeralcontainers") => true,
            Some(_) => return None,
        };
        let object = request.get("object").filter(|object| object.is_object())?;
        let kind = group_and_kind(request, object).and_then(|(group, kind)| Kind::of(group, kind));
        Some(Review { kind, object, through_subresource })
    }
}

/// `kind` is the request's GroupVersionKind; without it, the object's own `apiVersion` and
/// `kind`. A group of `None` means the review did not say.
fn group_and_kind<'a>(request: &'a Value, object: &'a Value) -> Option<(Option<&'a str>, &'a str)> {
    match request.get("kind") {
        Some(gvk @ Value::Object(_)) => {
            Some((gvk.get("group").and_then(Value::as_str), gvk.get("kind").and_then(Value::as_str)?))
        }
        _ => {
            let api_version = object.get("apiVersion").and_then(Value::as_str);
            let group = api_version.map(|v| v.rsplit_once('/').map_or("", |(group, _)| group));
            Some((group, object.get("kind").and_then(Value::as_str)?))
        }
    }
}

/// The kinds the rules review, known by group and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pod,
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job: a pod template at
    /// `spec.template`.
    Workload,
    CronJob,
    NetworkPolicy,
    ResourceQuota,
    Service,
    Ingress,
    HttpRoute,
    App,
    Project,
}

impl Kind {
    pub fn of(group: Option<&str>, kind: &str) -> Option<Self> {
        let (groups, reviewed): (&[&str], _) = match kind {
            "Pod" => (&[""], Kind::Pod),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
                (&["apps", "extensions"], Kind::Workload)
            }
            "Job" => (&["batch"], Kind::Workload),
            "CronJob" => (&["batch"], Kind::CronJob),
            "NetworkPolicy" => (&["networking.k8s.io"], Kind::NetworkPolicy),
            "ResourceQuota" => (&[""], Kind::ResourceQuota),
            "Service" => (&[""], Kind::Service),
            "Ingress" => (&["networking.k8s.io"], Kind::Ingress),
            "HTTPRoute" => (&["gateway.networking.k8s.io"], Kind::HttpRoute),
            "App" => (&[KUBEOP_GROUP], Kind::App),
            "Project" => (&[KUBEOP_GROUP], Kind::Project),
            _ => return None,
        };
        // A custom resource that happens to be called `Job` is not a Job.
        group.is_none_or(|group| groups.contains(&group)).then_some(reviewed)
    }

    /// Where the pod spec is, for the kinds that have one.
    pub fn pod_spec_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Pod => Some(&["spec"]),
            Kind::Workload => Some(&["spec", "template", "spec"]),
            Kind::CronJob => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(request: Value) -> Option<(Option<Kind>, bool)> {
        Review::read(&request).map(|review| (review.kind, review.through_subresource))
    }

    #[test]
    fn kinds_are_recognised_by_group_and_kind() {
        assert_eq!(Kind::of(Some(""), "Pod"), Some(Kind::Pod));
        assert_eq!(Kind::of(Some("apps"), "Deployment"), Some(Kind::Workload));
        assert_eq!(Kind::of(Some("batch"), "CronJob"), Some(Kind::CronJob));
        assert_eq!(Kind::of(Some("paas.kubeop.io"), "App"), Some(Kind::App));
        assert_eq!(Kind::of(Some("example.com"), "Job"), None);
        assert_eq!(Kind::of(Some("example.com"), "App"), None);
        assert_eq!(Kind::of(Some("apps"), "Pod"), None);
        assert_eq!(Kind::of(Some(""), "ConfigMap"), None);
    }

    #[test]
    fn the_object_kind_stands_in_for_a_missing_request_kind() {
        let request = json!({"operation": "CREATE", "object": {"apiVersion": "batch/v1", "kind": "Job"}});
        assert_eq!(read(request), Some((Some(Kind::Workload), false)));
        let request = json!({"operation": "CREATE", "object": {"apiVersion": "v1", "kind": "Service"}});
        assert_eq!(read(request), Some((Some(Kind::Service), false)));
        let request =
            json!({"operation": "CREATE", "object": {"apiVersion": "example.com/v1", "kind": "Job"}});
        assert_eq!(read(request), Some((None, false)));
    }

    #[test]
    fn deletes_connects_and_most_subresources_are_not_reviewed() {
        let pod = json!({"kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": {"spec": {}}});
        let with = |fields: Value| {
            let mut request = pod.clone();
            request.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            read(request)
        };
        assert_eq!(with(json!({"operation": "DELETE"})), None);
        assert_eq!(with(json!({"operation": "CONNECT"})), None);
        assert_eq!(with(json!({"operation": "UPDATE", "subResource": "status"})), None);
        assert_eq!(with(json!({"operation": "UPDATE", "subResource": "scale"})), None);
        assert_eq!(
            with(json!({"operation": "UPDATE", "subResource": "ephemeralcontainers"})),
            Some((Some(Kind::Pod), true))
        );
        assert_eq!(with(json!({"operation": "CREATE"})), Some((Some(Kind::Pod), false)));
        assert_eq!(with(json!({"operation": "CREATE", "object": null})), None);
    }
}
