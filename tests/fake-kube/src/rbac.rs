//! RBAC as the real authorizer evaluates it, for ServiceAccount callers (the admin bypasses it):
//! RoleBindings in the request's namespace and ClusterRoleBindings grant the rules of the Role
//! or ClusterRole they reference.

use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::state::Store;
use crate::tokens::User;

const RBAC: &str = "rbac.authorization.k8s.io";

/// What a request wants to do, in the terms RBAC rules speak.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let any_or = |field: &str, wanted: &str| strings(rule, field).iter().any(|s| s == "*" || s == wanted);
    let resource_matches = strings(rule, "resources").iter().any(|r| match attrs.subresource {
        None => r == "*" || r == attrs.resource,
        Some(sub) => {
            r == "*"
                || *r == format!("{}/{sub}", attrs.resource)
                || *r == format!("{}/*", attrs.resource)
                || *r == format!("*/{sub}")
        }
    });
    let names = strings(rule, "resourceNames");
    let name_matches = names.is_empty() || attrs.name.is_some_and(|n| names.iter().any(|r| r == n));
    any_or("verbs", attrs.verb) && any_or("apiGroups", attrs.group) && resource_matches && name_matches
}

fn subject_matches(subject: &Value, binding_namespace: &str, user: &User) -> bool {
    let field = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or_default();
    match field("kind") {
        "ServiceAccount" => {
            let namespace = match field("namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            user.name == format!("system:serviceaccount:{namespace}:{}", field("name"))
        }
        "User" => user.name == field("name"),
        "Group" => user.groups.iter().any(|g| g == field("name")),
        _ => false,
    }
}

fn bound_rules<'s>(store: &'s Store, binding: &Value, namespace: &str) -> Vec<&'s Value> {
    let kind = binding.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or_default();
    let name = binding.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or_default();
    let role = match kind {
        "Role" => store.get(&key("roles", namespace, name)),
        "ClusterRole" => store.get(&key("clusterroles", "", name)),
        _ => None,
    };
    role.and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .map(|rules| rules.iter().collect())
        .unwrap_or_default()
}

fn key(plural: &str, namespace: &str, name: &str) -> crate::state::ObjKey {
    crate::state::ObjKey {
        group: RBAC.into(),
        plural: plural.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn allowed(store: &Store, user: &User, attrs: &Attributes) -> bool {
    let grants = |binding: &Value, namespace: &str| {
        let subjects = binding.get("subjects").and_then(Value::as_array);
        subjects.is_some_and(|s| s.iter().any(|s| subject_matches(s, namespace, user)))
            && bound_rules(store, binding, namespace).into_iter().any(|rule| rule_allows(rule, attrs))
    };
    let cluster_wide = store.list(RBAC, "clusterrolebindings", None).into_iter().any(|b| grants(b, ""));
    cluster_wide
        || attrs
            .namespace
            .is_some_and(|ns| store.list(RBAC, "rolebindings", Some(ns)).into_iter().any(|b| grants(b, ns)))
}

/// Ok when RBAC allows the request; otherwise the 403 the real API server answers.
pub fn authorize(store: &Store, user: &User, attrs: &Attributes) -> Result<()> {
    if user.admin || allowed(store, user, attrs) {
        return Ok(());
    }
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource),
        None => attrs.resource.to_owned(),
    };
    let subject = match attrs.name {
        Some(name) => format!("{} \"{name}\"", attrs.resource),
        None => attrs.resource.to_owned(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    Err(ApiError::forbidden(format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.group
    )))
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

/// Namespaced workload resources `edit` may change and `view` may read (never secrets).
fn workload_rules(verbs: &[&str], with_secrets: bool) -> Vec<Value> {
    let mut core = vec![
        "pods",
        "pods/log",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "services",
        "configmaps",
        "serviceaccounts",
        "endpoints",
        "events",
        "persistentvolumeclaims",
        "replicationcontrollers",
    ];
    if with_secrets {
        core.push("secrets");
    }
    vec![
        rule(&[""], &core, verbs),
        rule(
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "replicasets",
                "replicasets/scale",
            ],
            verbs,
        ),
        rule(&["batch"], &["jobs", "cronjobs"], verbs),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], verbs),
        rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], verbs),
        rule(&["policy"], &["poddisruptionbudgets"], verbs),
        rule(&["events.k8s.io"], &["events"], verbs),
    ]
}

fn view_rules() -> Vec<Value> {
    let mut rules = workload_rules(READ, false);
    rules.push(rule(
        &[""],
        &[
            "resourcequotas",
            "resourcequotas/status",
            "limitranges",
            "namespaces",
            "namespaces/status",
            "pods/status",
        ],
        READ,
    ));
    rules.push(rule(
        &["apps"],
        &["deployments/status", "statefulsets/status", "daemonsets/status", "replicasets/status"],
        READ,
    ));
    rules.push(rule(&["batch"], &["jobs/status", "cronjobs/status"], READ));
    rules
}

fn edit_rules() -> Vec<Value> {
    let all: Vec<&str> = READ.iter().chain(WRITE).copied().collect();
    let mut rules = workload_rules(&all, true);
    rules.push(rule(&[""], &["serviceaccounts/token"], &["create"]));
    rules.extend(view_rules());
    rules
}

fn admin_rules() -> Vec<Value> {
    let all: Vec<&str> = READ.iter().chain(WRITE).copied().collect();
    let mut rules = edit_rules();
    rules.push(rule(&[RBAC], &["roles", "rolebindings"], &all));
    rules.push(rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]));
    rules
}

/// The default ClusterRoles and the binding that makes system:masters cluster admins.
pub fn built_in_objects() -> Vec<(&'static str, Value)> {
    let role = |name: &str, rules: Vec<Value>| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": name, "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" } },
            "rules": rules,
        })
    };
    let everything = vec![rule(&["*"], &["*"], &["*"]), json!({ "nonResourceURLs": ["*"], "verbs": ["*"] })];
    vec![
        ("clusterroles", role("cluster-admin", everything)),
        ("clusterroles", role("admin", admin_rules())),
        ("clusterroles", role("edit", edit_rules())),
        ("clusterroles", role("view", view_rules())),
        (
            "clusterrolebindings",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": { "name": "cluster-admin" },
                "roleRef": { "apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin" },
                "subjects": [{ "apiGroup": RBAC, "kind": "Group", "name": "system:masters" }],
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
        Attributes { verb, group, resource, subresource: None, namespace: Some("ns"), name: None }
    }

    fn any_allows(rules: &[Value], attrs: &Attributes) -> bool {
        rules.iter().any(|r| rule_allows(r, attrs))
    }

    #[test]
    fn default_roles_as_a_matrix() {
        let cases = [
            ("list", "", "configmaps", true, true),
            ("create", "", "configmaps", false, true),
            ("get", "", "secrets", false, true),
            ("delete", "apps", "deployments", false, true),
            ("list", "rbac.authorization.k8s.io", "roles", false, false),
            ("create", "rbac.authorization.k8s.io", "rolebindings", false, false),
            ("get", "", "resourcequotas", true, true),
            ("update", "", "resourcequotas", false, false),
            ("create", "", "limitranges", false, false),
        ];
        for (verb, group, resource, view, edit) in cases {
            let a = attrs(verb, group, resource);
            assert_eq!(any_allows(&view_rules(), &a), view, "view {verb} {resource}");
            assert_eq!(any_allows(&edit_rules(), &a), edit, "edit {verb} {resource}");
        }
        let token = Attributes { subresource: Some("token"), ..attrs("create", "", "serviceaccounts") };
        assert!(any_allows(&edit_rules(), &token));
        assert!(!any_allows(&view_rules(), &token));
        assert!(any_allows(&admin_rules(), &attrs("create", RBAC, "rolebindings")));
    }

    #[test]
    fn resource_names_and_wildcards() {
        let named = json!({ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"] });
        let get_a = Attributes { name: Some("a"), ..attrs("get", "", "configmaps") };
        let get_b = Attributes { name: Some("b"), ..attrs("get", "", "configmaps") };
        assert!(rule_allows(&named, &get_a));
        assert!(!rule_allows(&named, &get_b));
        assert!(!rule_allows(&named, &attrs("get", "", "configmaps")));
        let subresources = json!({ "apiGroups": ["apps"], "resources": ["deployments/*"], "verbs": ["*"] });
        let status = Attributes { subresource: Some("status"), ..attrs("patch", "apps", "deployments") };
        assert!(rule_allows(&subresources, &status));
        assert!(!rule_allows(&subresources, &attrs("patch", "apps", "deployments")));
    }
}
