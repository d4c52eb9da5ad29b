//! The one mutation: every object created or updated carries the label
//! `app.kubeop.io/managed-by: kubeop`.

use serde_json::{Value, json};

pub const MANAGED_BY_LABEL: &str = "app.kubeop.io/managed-by";
pub const MANAGER: &str = "kubeop";

/// A JSON Patch (RFC 6902) adding the label, or `None` when the object already has it.
pub fn managed_by(object: &Value) -> Option<String> {
    let metadata = object.get("metadata").filter(|metadata| metadata.is_object());
    let labels = metadata.and_then(|metadata| metadata.get("labels")).and_then(Value::as_object);
    let operation = match labels {
        Some(labels) if labels.get(MANAGED_BY_LABEL).and_then(Value::as_str) == Some(MANAGER) => return None,
        Some(labels) if !labels.is_empty() => json!({
            "op": "add",
            "path": format!("/metadata/labels/{}", pointer_token(MANAGED_BY_LABEL)),
            "value": MANAGER,
        }),
        // `add` on an existing member replaces it, so this also covers `labels: null` or `{}`.
        _ if metadata.is_some() => json!({
            "op": "add",
            "path": "/metadata/labels",
            "value": {MANAGED_BY_LABEL: MANAGER},
        }),
        _ => json!({
            "op": "add",
            "path": "/metadata",
            "value": {"labels": {MANAGED_BY_LABEL: MANAGER}},
        }),
    };
    Some(json!([operation]).to_string())
}

/// A key as one JSON Pointer (RFC 6901) reference token.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a patch of `add` operations, the only ones this plugin emits, the way RFC 6902
    /// says: the parent must exist, and an existing member is replaced.
    fn apply(object: &Value, patch: &str) -> Value {
        let mut object = object.clone();
        let patch: Value = serde_json::from_str(patch).unwrap();
        for operation in patch.as_array().unwrap() {
            assert_eq!(operation["op"], "add");
            let path = operation["path"].as_str().unwrap();
            let (parent, key) = path.rsplit_once('/').unwrap();
            let key = key.replace("~1", "/").replace("~0", "~");
            let parent =
                object.pointer_mut(parent).and_then(Value::as_object_mut).expect("the parent exists");
            parent.insert(key, operation["value"].clone());
        }
        object
    }

    #[test]
    fn an_object_without_labels_gets_a_label_map() {
        let object = json!({"kind": "ConfigMap", "metadata": {"name": "web"}});
        let patch = managed_by(&object).unwrap();
        assert_eq!(
            patch,
            r#"[{"op":"add","path":"/metadata/labels","value":{"app.kubeop.io/managed-by":"kubeop"}}]"#
        );
        assert_eq!(
            apply(&object, &patch),
            json!({"kind": "ConfigMap", "metadata": {"name": "web", "labels": {"app.kubeop.io/managed-by": "kubeop"}}})
        );
        let null_labels = json!({"metadata": {"name": "web", "labels": null}});
        assert_eq!(
            apply(&null_labels, &managed_by(&null_labels).unwrap())["metadata"]["labels"],
            json!({MANAGED_BY_LABEL: MANAGER})
        );
    }

    #[test]
    fn an_object_with_labels_gets_one_more() {
        let object = json!({"metadata": {"name": "web", "labels": {"app": "web"}}});
        let patch = managed_by(&object).unwrap();
        assert_eq!(
            patch,
            r#"[{"op":"add","path":"/metadata/labels/app.kubeop.io~1managed-by","value":"kubeop"}]"#
        );
        assert_eq!(
            apply(&object, &patch)["metadata"]["labels"],
            json!({"app": "web", "app.kubeop.io/managed-by": "kubeop"})
        );
    }

    #[test]
    fn another_manager_is_replaced() {
        let object = json!({"metadata": {"labels": {"app.kubeop.io/managed-by": "helm"}}});
        let patched = apply(&object, &managed_by(&object).unwrap());
        assert_eq!(patched["metadata"]["labels"], json!({"app.kubeop.io/managed-by": "kubeop"}));
    }

    #[test]
    fn an_object_already_managed_is_not_patched() {
        let object = json!({"metadata": {"labels": {"app": "web", "app.kubeop.io/managed-by": "kubeop"}}});
        assert_eq!(managed_by(&object), None);
    }

    #[test]
    fn an_object_without_metadata_gets_it() {
        let object = json!({"kind": "Pod"});
        let patched = apply(&object, &managed_by(&object).unwrap());
        assert_eq!(patched["metadata"]["labels"], json!({"app.kubeop.io/managed-by": "kubeop"}));
    }

    #[test]
    fn pointer_tokens_escape_tilde_then_slash() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_token("~1"), "~01");
    }
}
