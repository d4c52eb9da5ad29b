use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kubeop_fake_kube::FakeKube;
use serde_json::json;

use crate::helpers::{config_map, status_of};

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    let fields = cm.metadata.managed_fields.clone().unwrap_or_default();
    fields.into_iter().map(|f| (f.manager.unwrap_or_default(), f.operation.unwrap_or_default())).collect()
}

#[tokio::test]
async fn apply_creates_then_reapply_removes_omitted_fields() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    let params = PatchParams::apply("kubeop");

    let mut first = config_map("settings", &[("a", "1"), ("b", "2")]);
    first.metadata.labels = Some([("app".to_owned(), "x".to_owned())].into());
    let created = cms.patch("settings", &params, &Patch::Apply(&first)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(managers(&created), vec![("kubeop".into(), "Apply".into())]);
    let fields = created.metadata.managed_fields.as_ref().unwrap()[0].fields_v1.clone().unwrap().0;
    assert_eq!(fields["f:data"], json!({ "f:a": {}, "f:b": {} }));

    // Re-applying the same config is a no-op: no new resourceVersion, even a minute later (the
    // managedFields timestamp only moves with a change, as in Kubernetes).
    let again = cms.patch("settings", &params, &Patch::Apply(&first)).await.unwrap();
    assert_eq!(again.metadata.resource_version, created.metadata.resource_version);
    fake.advance_clock(std::time::Duration::from_secs(60));
    let later = cms.patch("settings", &params, &Patch::Apply(&first)).await.unwrap();
    assert_eq!(later.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(later.metadata.managed_fields, created.metadata.managed_fields);

    let second = config_map("settings", &[("a", "1")]);
    let reapplied = cms.patch("settings", &params, &Patch::Apply(&second)).await.unwrap();
    assert_eq!(reapplied.data.unwrap(), [("a".to_owned(), "1".to_owned())].into());
    assert!(reapplied.metadata.labels.unwrap_or_default().is_empty(), "the label was released too");
}

#[tokio::test]
async fn apply_conflicts_between_managers_unless_forced() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    cms.patch("c", &PatchParams::apply("first"), &Patch::Apply(config_map("c", &[("a", "1")])))
        .await
        .unwrap();

    // Same value: shared ownership, no conflict.
    let shared = config_map("c", &[("a", "1"), ("b", "2")]);
    let both = cms.patch("c", &PatchParams::apply("second"), &Patch::Apply(&shared)).await.unwrap();
    assert_eq!(managers(&both).len(), 2);

    let fight = config_map("c", &[("a", "changed")]);
    let (code, reason, message) =
        status_of(cms.patch("c", &PatchParams::apply("second"), &Patch::Apply(&fight)).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("conflict with \"first\"") && message.contains(".data.a"), "{message}");

    let forced = cms.patch("c", &PatchParams::apply("second").force(), &Patch::Apply(&fight)).await.unwrap();
    let data = forced.data.clone().unwrap();
    assert_eq!(data["a"], "changed");
    assert!(!data.contains_key("b"), "second no longer applies b and nobody else owns it");
    assert_eq!(managers(&forced), vec![("second".into(), "Apply".into())], "first lost its only field");
}

#[tokio::test]
async fn updates_are_recorded_as_update_managers() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    cms.patch("c", &PatchParams::apply("applier"), &Patch::Apply(config_map("c", &[("a", "1")])))
        .await
        .unwrap();
    let edit = Patch::Merge(json!({ "data": { "a": "2" } }));
    let edited = cms
        .patch("c", &PatchParams { field_manager: Some("editor".into()), ..Default::default() }, &edit)
        .await
        .unwrap();
    assert_eq!(managers(&edited), vec![("editor".into(), "Update".into())]);

    // The applier now conflicts with the editor's value.
    let reapply =
        cms.patch("c", &PatchParams::apply("applier"), &Patch::Apply(config_map("c", &[("a", "1")]))).await;
    assert_eq!(status_of(reapply).0, 409);
    let (code, _, _) =
        status_of(cms.patch("c", &PatchParams::default(), &Patch::Apply(config_map("c", &[]))).await);
    assert_eq!(code, 400, "apply needs a field manager");
}
