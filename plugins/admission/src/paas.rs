//! kubeop's own objects (group `paas.kubeop.io`): the `app-namespace` rule (an App lives in its
//! project's namespace and names that project) and the `project-tenant` rule (a Project names
//! its tenant).

use crate::finding::{FieldPath, Findings, Rule};
use serde_json::Value;

pub const TENANT_ID_LABEL: &str = "paas.kubeop.io/tenant-id";

pub fn check_app(object: &Value, tenant_id: Option<&str>, project_id: Option<&str>, findings: &mut Findings) {
    let Some(project_id) = project_id else {
        let path = FieldPath::root().fields(&["metadata", "namespace"]);
        findings.add(Rule::AppNamespace, path, "an App must be created in the namespace of a kubeop project");
        return;
    };
    let project = project_object_name(project_id);
    let project_ref = object.pointer("/spec/projectRef").and_then(Value::as_str).unwrap_or("");
    if project_ref != project {
        let path = FieldPath::root().fields(&["spec", "projectRef"]);
        let reason = format!("must be {project}, the project owning this namespace (not \"{project_ref}\")");
        findings.add(Rule::AppNamespace, path, reason);
    }
    let label = object.pointer("/metadata/labels").and_then(|labels| labels.get(TENANT_ID_LABEL));
    if let Some(label) = label.filter(|label| !label.is_null())
        && label.as_str() != tenant_id
    {
        let path = FieldPath::root().fields(&["metadata", "labels", TENANT_ID_LABEL]);
        findings.add(Rule::AppNamespace, path, "does not name the tenant owning this namespace");
    }
}

pub fn check_project(object: &Value, findings: &mut Findings) {
    let tenant_ref = object.pointer("/spec/tenantRef").and_then(Value::as_str).unwrap_or("");
    if tenant_ref.trim().is_empty() {
        let path = FieldPath::root().fields(&["spec", "tenantRef"]);
        findings.add(Rule::ProjectTenant, path, "a Project must name its tenant");
    }
}

/// The name of a project's object: its id in lower case with `_` made `-` (object names are
/// DNS-1123), as the manager writes it.
fn project_object_name(project_id: &str) -> String {
    project_id.to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROJECT: &str = "p_01JD5X7K3Q9M2N4P6R8S0T1V2W";

    fn app(object: Value, tenant_id: Option<&str>, project_id: Option<&str>) -> Vec<String> {
        let mut findings = Findings::default();
        check_app(&object, tenant_id, project_id, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    fn project(object: Value) -> Vec<String> {
        let mut findings = Findings::default();
        check_project(&object, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn project_objects_are_named_after_the_id() {
        assert_eq!(project_object_name(PROJECT), "p-01jd5x7k3q9m2n4p6r8s0t1v2w");
    }

    #[test]
    fn an_app_naming_its_namespaces_project_is_allowed() {
        let object = json!({
            "metadata": {"labels": {"paas.kubeop.io/tenant-id": "t_01"}},
            "spec": {"projectRef": "p-01jd5x7k3q9m2n4p6r8s0t1v2w"},
        });
        assert_eq!(app(object, Some("t_01"), Some(PROJECT)), Vec::<String>::new());
        let unlabelled = json!({"spec": {"projectRef": "p-01jd5x7k3q9m2n4p6r8s0t1v2w"}});
        assert_eq!(app(unlabelled, Some("t_01"), Some(PROJECT)), Vec::<String>::new());
    }

    #[test]
    fn an_app_outside_a_kubeop_namespace_is_denied() {
        let object = json!({"spec": {"projectRef": "p-01"}});
        assert_eq!(
            app(object, None, None),
            [
                "[app-namespace] metadata.namespace: an App must be created in the namespace of a kubeop project"
            ]
        );
    }

    #[test]
    fn an_app_naming_another_project_is_denied() {
        let object = json!({"spec": {"projectRef": "p-02"}});
        assert_eq!(
            app(object, Some("t_01"), Some(PROJECT)),
            [
                "[app-namespace] spec.projectRef: must be p-01jd5x7k3q9m2n4p6r8s0t1v2w, the project owning this namespace (not \"p-02\")"
            ]
        );
        assert_eq!(app(json!({"spec": {}}), Some("t_01"), Some(PROJECT)).len(), 1);
    }

    #[test]
    fn an_app_labelled_with_another_tenant_is_denied() {
        let object = json!({
            "metadata": {"labels": {"paas.kubeop.io/tenant-id": "t_02"}},
            "spec": {"projectRef": "p-01jd5x7k3q9m2n4p6r8s0t1v2w"},
        });
        assert_eq!(
            app(object, Some("t_01"), Some(PROJECT)),
            [
                "[app-namespace] metadata.labels[paas.kubeop.io/tenant-id]: does not name the tenant owning this namespace"
            ]
        );
    }

    #[test]
    fn a_project_must_name_its_tenant() {
        assert_eq!(project(json!({"spec": {"tenantRef": "t-01", "name": "web"}})), Vec::<String>::new());
        for spec in [json!({"name": "web"}), json!({"tenantRef": " "}), json!({"tenantRef": 3})] {
            assert_eq!(
                project(json!({"spec": spec})),
                ["[project-tenant] spec.tenantRef: a Project must name its tenant"]
            );
        }
        assert_eq!(project(json!({})).len(), 1);
    }
}
