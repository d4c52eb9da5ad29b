use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::discovery::{Discovery, Scope};
use kubeop_fake_kube::FakeKube;
use serde_json::json;

use crate::helpers::status_of;

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.example.com" },
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"] },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "subresources": { "status": {} }
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_crd_registers_its_resource_for_crud_and_discovery() {
    let fake = FakeKube::new();
    let client = fake.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds.create(&PostParams::default(), &widget_crd()).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    let established = conditions.iter().find(|c| c.type_ == "Established").unwrap();
    assert_eq!(established.status, "True");
    assert!(conditions.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "True"));

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget")).unwrap();
    assert_eq!(resource.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(discovery.has_group("apps"));

    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut widget = DynamicObject::new("w1", &ar);
    widget.data = json!({ "spec": { "size": 3 }, "status": { "ready": true } });
    let created = widgets.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 3);
    assert!(created.data.get("status").is_none(), "status subresource: create drops status");

    let status = Patch::Merge(json!({ "status": { "ready": true } }));
    let patched = widgets.patch_status("w1", &PatchParams::default(), &status).await.unwrap();
    assert_eq!(patched.data["status"]["ready"], true);
    let applied = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w2" }, "spec": { "size": 1 } });
    widgets.patch("w2", &PatchParams::apply("test"), &Patch::Apply(applied)).await.unwrap();
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 2);

    crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(widgets.list(&ListParams::default()).await).0, 404);
    assert!(fake.objects("example.com/v1", "widgets", None).is_empty());
    let discovery = Discovery::new(client).run().await.unwrap();
    assert!(!discovery.has_group("example.com"));
}

#[tokio::test]
async fn aggregated_discovery_lists_crds_and_built_ins() {
    let fake = FakeKube::new();
    let client = fake.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let discovery = Discovery::new(client).run_aggregated().await.unwrap();
    let (widgets, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget")).unwrap();
    assert_eq!((widgets.plural.as_str(), caps.scope), ("widgets", Scope::Namespaced));
    let (configmaps, _) = discovery.resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")).unwrap();
    assert_eq!(configmaps.plural, "configmaps");
    assert!(discovery.has_group("rbac.authorization.k8s.io"));
}

#[tokio::test]
async fn version_and_built_in_discovery() {
    let fake = FakeKube::new();
    let client = fake.client();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "33"));
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (deployments, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")).unwrap();
    assert_eq!(deployments.plural, "deployments");
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "deployments/status" || r.plural == "status"));
    let (namespaces, caps) = discovery.resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")).unwrap();
    assert_eq!((namespaces.plural.as_str(), caps.scope), ("namespaces", Scope::Cluster));
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "serviceaccounts/token"));
    let text = client.request_text(http::Request::get("/healthz").body(Vec::new()).unwrap()).await.unwrap();
    assert_eq!(text, "ok");
}
