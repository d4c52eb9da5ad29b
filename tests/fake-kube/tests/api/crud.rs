use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kubeop_fake_kube::FakeKube;
use serde_json::json;

use crate::helpers::{config_map, labelled, status_of};

#[tokio::test]
async fn create_get_replace_and_stale_replace_conflicts() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");

    let created = cms.create(&PostParams::default(), &config_map("app", &[("a", "1")])).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let first_rv = meta.resource_version.clone().unwrap();

    let mut changed = cms.get("app").await.unwrap();
    changed.data = Some([("a".to_owned(), "2".to_owned())].into());
    let replaced = cms.replace("app", &PostParams::default(), &changed).await.unwrap();
    assert_ne!(replaced.metadata.resource_version.as_deref(), Some(first_rv.as_str()));
    assert_eq!(replaced.metadata.generation, Some(2), "data is outside metadata and status");

    // `changed` still carries the resourceVersion that `replaced` superseded.
    let (code, reason, message) = status_of(cms.replace("app", &PostParams::default(), &changed).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("the object has been modified"), "{message}");

    let (code, reason, _) = status_of(cms.create(&PostParams::default(), &config_map("app", &[])).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, reason, message) = status_of(cms.get("missing").await);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "configmaps \"missing\" not found")
    );
    let (code, _, _) =
        status_of(cms.replace("missing", &PostParams::default(), &config_map("missing", &[])).await);
    assert_eq!(code, 404);

    let stored = fake.object("v1", "configmaps", Some("default"), "app").unwrap();
    assert_eq!(stored["data"]["a"], "2");
}

#[tokio::test]
async fn generate_name_namespace_checks_and_bad_bodies() {
    let fake = FakeKube::new();
    let client = fake.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut generated = config_map("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("job-".into());
    let created = cms.create(&PostParams::default(), &generated).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");

    let mut elsewhere = config_map("x", &[]);
    elsewhere.metadata.namespace = Some("kube-system".into());
    let (code, reason, _) = status_of(cms.create(&PostParams::default(), &elsewhere).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let (code, _, message) = status_of(missing.create(&PostParams::default(), &config_map("x", &[])).await);
    assert_eq!((code, message.as_str()), (404, "namespaces \"nope\" not found"));

    let request =
        http::Request::post("/api/v1/namespaces/default/configmaps").body(b"{not json".to_vec()).unwrap();
    let error = client.request::<ConfigMap>(request).await.unwrap_err();
    assert!(matches!(error, kube::Error::Api(ref s) if s.code == 400), "{error:?}");

    let request = http::Request::get("/apis/example.com/v1/widgets").body(Vec::new()).unwrap();
    let error = client.request::<serde_json::Value>(request).await.unwrap_err();
    assert!(matches!(error, kube::Error::Api(ref s) if s.code == 404), "{error:?}");
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    for (name, labels) in [
        ("web", &[("app", "web"), ("tier", "front")][..]),
        ("api", &[("app", "api"), ("tier", "back")][..]),
        ("plain", &[][..]),
    ] {
        cms.create(&PostParams::default(), &labelled(name, labels)).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    let cases = [
        ("app=web", vec!["web"]),
        ("app!=web", vec!["api", "plain"]),
        ("tier in (front,back)", vec!["api", "web"]),
        ("tier notin (front)", vec!["api", "plain"]),
        ("app", vec!["api", "web"]),
        ("!app", vec!["plain"]),
        ("app,tier==back", vec!["api"]),
    ];
    for (selector, expected) in cases {
        let list = cms.list(&ListParams::default().labels(selector)).await.unwrap();
        assert_eq!(names(list), expected, "{selector}");
    }
    let by_name = cms.list(&ListParams::default().fields("metadata.name=plain")).await.unwrap();
    assert_eq!(names(by_name), vec!["plain"]);
    let not_name = cms.list(&ListParams::default().fields("metadata.name!=plain")).await.unwrap();
    assert_eq!(names(not_name), vec!["api", "web"]);
    let all: Api<ConfigMap> = Api::all(fake.client());
    let in_default = all.list(&ListParams::default().fields("metadata.namespace==default")).await.unwrap();
    assert_eq!(in_default.items.len(), 3);
    let (code, _, _) = status_of(cms.list(&ListParams::default().labels("app in (web")).await);
    assert_eq!(code, 400);
    let (code, _, _) = status_of(cms.list(&ListParams::default().fields("spec.x=y")).await);
    assert_eq!(code, 400);
}

#[tokio::test]
async fn merge_and_json_patches() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    cms.create(&PostParams::default(), &config_map("c", &[("a", "1"), ("b", "2")])).await.unwrap();

    let merge =
        Patch::Merge(json!({ "data": { "a": null, "c": "3" }, "metadata": { "labels": { "x": "y" } } }));
    let patched = cms.patch("c", &PatchParams::default(), &merge).await.unwrap();
    let data = patched.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["b", "c"]);
    assert_eq!(patched.metadata.labels.unwrap()["x"], "y");

    let strategic = Patch::Strategic(json!({ "data": { "d": "4" } }));
    assert!(
        cms.patch("c", &PatchParams::default(), &strategic).await.unwrap().data.unwrap().contains_key("d")
    );

    let ops: json_patch::Patch = serde_json::from_value(json!([
        { "op": "replace", "path": "/data/b", "value": "20" },
        { "op": "remove", "path": "/data/c" },
    ]))
    .unwrap();
    let patched = cms.patch("c", &PatchParams::default(), &Patch::Json::<()>(ops)).await.unwrap();
    assert_eq!(
        patched.data.unwrap(),
        [("b".to_owned(), "20".to_owned()), ("d".to_owned(), "4".to_owned())].into()
    );

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "test", "path": "/data/b", "value": "nope" }])).unwrap();
    let (code, _, _) = status_of(cms.patch("c", &PatchParams::default(), &Patch::Json::<()>(failing)).await);
    assert_eq!(code, 422);
    let (code, _, _) = status_of(cms.patch("missing", &PatchParams::default(), &merge).await);
    assert_eq!(code, 404);
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": "nginx" }] }
            }
        },
        "status": { "replicas": 99 }
    }))
    .unwrap()
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let fake = FakeKube::new();
    let deployments: Api<Deployment> = Api::namespaced(fake.client(), "default");
    let created = deployments.create(&PostParams::default(), &deployment("web", 1)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status is the server's on create");

    let status = Patch::Merge(
        json!({ "status": { "readyReplicas": 1, "observedGeneration": 1 }, "spec": { "replicas": 5 } }),
    );
    let patched = deployments.patch_status("web", &PatchParams::default(), &status).await.unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(1), "/status ignores spec");
    assert_eq!(patched.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(patched.metadata.generation, Some(1));

    let mut replaced = patched.clone();
    replaced.status = Some(DeploymentStatus { ready_replicas: Some(7), ..Default::default() });
    replaced.spec.as_mut().unwrap().replicas = Some(3);
    let replaced = deployments.replace("web", &PostParams::default(), &replaced).await.unwrap();
    assert_eq!(replaced.status.unwrap().ready_replicas, Some(1), "main writes keep status");
    assert_eq!(replaced.spec.unwrap().replicas, Some(3));
    assert_eq!(replaced.metadata.generation, Some(2));

    let labels = Patch::Merge(json!({ "metadata": { "labels": { "team": "a" } } }));
    let labelled = deployments.patch("web", &PatchParams::default(), &labels).await.unwrap();
    assert_eq!(labelled.metadata.generation, Some(2), "metadata changes keep the generation");

    let mut with_status = deployments.get_status("web").await.unwrap();
    with_status.status = Some(DeploymentStatus { replicas: Some(3), ..Default::default() });
    let put = deployments.replace_status("web", &PostParams::default(), &with_status).await.unwrap();
    assert_eq!(put.status.unwrap().replicas, Some(3));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    let answer = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = answer.left().expect("the object, still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await.unwrap().metadata.deletion_timestamp.is_some());

    let release = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
    cms.patch("held", &PatchParams::default(), &release).await.unwrap();
    assert_eq!(status_of(cms.get("held").await).0, 404);

    cms.create(&PostParams::default(), &config_map("free", &[])).await.unwrap();
    let deleted = cms.delete("free", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("free"));
    assert!(fake.object("v1", "configmaps", Some("default"), "free").is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it() {
    let fake = FakeKube::new();
    let client = fake.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team" } })).unwrap();
    let created = namespaces.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &config_map("a", &[])).await.unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &config_map("kept", &[]))
        .await
        .unwrap();

    let answer = namespaces.delete("team", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(answer.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(fake.objects("v1", "configmaps", Some("team")).is_empty());
    assert_eq!(fake.objects("v1", "configmaps", Some("default")).len(), 1);
    assert_eq!(status_of(namespaces.get("team").await).0, 404);
}

#[tokio::test]
async fn injected_failures_and_the_request_log() {
    let fake = FakeKube::new();
    let client = fake.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    fake.fail_next(2, 503);
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 503);
    client.apiserver_version().await.expect("discovery is not failed");
    let (code, reason, _) = status_of(cms.get("x").await);
    assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"));
    assert_eq!(status_of(cms.get("x").await).0, 404, "only two failures");

    fake.clear_requests();
    let apply = PatchParams::apply("tester");
    cms.patch("x", &apply, &Patch::Apply(config_map("x", &[]))).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.path, "/api/v1/namespaces/default/configmaps/x");
    assert!(request.query.contains("fieldManager=tester"), "{}", request.query);
    assert_eq!(request.user, "admin");
    assert_eq!(request.status, 200);
    assert_eq!(request.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(request.field_manager.as_deref(), Some("tester"));
}

#[tokio::test]
async fn delete_collection_and_delete_preconditions() {
    let fake = FakeKube::new();
    let client = fake.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        cms.create(&PostParams::default(), &labelled(name, &[("app", app)])).await.unwrap();
    }
    let deleted = cms
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(deleted.left().unwrap().items.len(), 2);
    let left: Vec<String> = fake
        .objects("v1", "configmaps", Some("default"))
        .iter()
        .map(|o| o["metadata"]["name"].to_string())
        .collect();
    assert_eq!(left, vec!["\"c\""]);

    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("other".into()), resource_version: None }),
        ..Default::default()
    };
    let (code, _, message) = status_of(cms.delete("c", &stale).await);
    assert_eq!(code, 409, "{message}");
    let uid = cms.get("c").await.unwrap().metadata.uid;
    let matching = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid, resource_version: None }),
        ..Default::default()
    };
    cms.delete("c", &matching).await.unwrap();

    let mut with_rv = config_map("d", &[]);
    with_rv.metadata.resource_version = Some("5".into());
    assert_eq!(status_of(cms.create(&PostParams::default(), &with_rv).await).0, 400);
    let protobuf = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(b"k8s\0".to_vec())
        .unwrap();
    let error = client.request::<ConfigMap>(protobuf).await.unwrap_err();
    assert!(matches!(error, kube::Error::Api(ref s) if s.code == 415), "{error:?}");
}

#[tokio::test]
async fn dry_run_answers_without_keeping_anything() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    let dry = PostParams { dry_run: true, ..Default::default() };
    let answer = cms.create(&dry, &config_map("ghost", &[("a", "1")])).await.unwrap();
    assert_eq!(answer.data.unwrap()["a"], "1");
    assert!(fake.object("v1", "configmaps", Some("default"), "ghost").is_none());

    cms.create(&PostParams::default(), &config_map("real", &[("a", "1")])).await.unwrap();
    let patch = Patch::Merge(json!({ "data": { "a": "2" } }));
    let patched = cms.patch("real", &PatchParams::default().dry_run(), &patch).await.unwrap();
    assert_eq!(patched.data.unwrap()["a"], "2");
    assert_eq!(fake.object("v1", "configmaps", Some("default"), "real").unwrap()["data"]["a"], "1");
}
