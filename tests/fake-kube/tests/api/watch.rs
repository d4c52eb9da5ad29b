use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kubeop_fake_kube::FakeKube;
use serde_json::json;
use tokio::sync::mpsc;

use crate::helpers::{config_map, eventually, labelled};

/// A watcher's events as (kind, name), forwarded from a background task.
fn watch_names(api: Api<ConfigMap>, config: watcher::Config) -> mpsc::UnboundedReceiver<(String, String)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let named =
                |kind: &str, cm: &ConfigMap| (kind.to_owned(), cm.metadata.name.clone().unwrap_or_default());
            let item = match &event {
                Ok(watcher::Event::Apply(cm)) => named("apply", cm),
                Ok(watcher::Event::InitApply(cm)) => named("init-apply", cm),
                Ok(watcher::Event::Delete(cm)) => named("delete", cm),
                Ok(watcher::Event::InitDone) => ("init-done".into(), String::new()),
                Ok(watcher::Event::Init) => continue,
                Err(_) => ("error".into(), String::new()),
            };
            if sender.send(item).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Waits for `wanted`, skipping other events (watch errors while the fake is down among them).
async fn expect(events: &mut mpsc::UnboundedReceiver<(String, String)>, kind: &str, name: &str) {
    let wanted = (kind.to_owned(), name.to_owned());
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            if event == wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {wanted:?}");
}

#[tokio::test]
async fn watcher_sees_changes_and_survives_an_outage() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    cms.create(&PostParams::default(), &config_map("before", &[])).await.unwrap();
    let mut events = watch_names(cms.clone(), watcher::Config::default());
    expect(&mut events, "init-apply", "before").await;
    expect(&mut events, "init-done", "").await;

    cms.create(&PostParams::default(), &config_map("a", &[])).await.unwrap();
    expect(&mut events, "apply", "a").await;
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({ "data": { "k": "v" } }))).await.unwrap();
    expect(&mut events, "apply", "a").await;
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    expect(&mut events, "delete", "a").await;

    fake.set_down(true);
    expect(&mut events, "error", "").await;
    fake.set_down(false);
    cms.create(&PostParams::default(), &config_map("after", &[])).await.unwrap();
    expect(&mut events, "apply", "after").await;
}

#[tokio::test]
async fn streaming_list_watcher_and_label_filter() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    cms.create(&PostParams::default(), &labelled("old", &[("app", "x")])).await.unwrap();
    let config = watcher::Config::default().streaming_lists().labels("app=x");
    let mut events = watch_names(cms.clone(), config);
    expect(&mut events, "init-apply", "old").await;
    expect(&mut events, "init-done", "").await;
    cms.create(&PostParams::default(), &labelled("other", &[("app", "y")])).await.unwrap();
    cms.create(&PostParams::default(), &labelled("new", &[("app", "x")])).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap();
    assert_eq!(next, Some(("apply".into(), "new".into())), "the unlabelled object is filtered out");

    // Relabelling moves objects out of and into the selection.
    let relabel = |app: &str| Patch::Merge(json!({ "metadata": { "labels": { "app": app } } }));
    cms.patch("new", &PatchParams::default(), &relabel("y")).await.unwrap();
    expect(&mut events, "delete", "new").await;
    cms.patch("other", &PatchParams::default(), &relabel("x")).await.unwrap();
    expect(&mut events, "apply", "other").await;
}

#[tokio::test]
async fn reflector_store_follows_the_cluster() {
    let fake = FakeKube::new();
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default()));
    tokio::spawn(stream.default_backoff().applied_objects().for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();

    cms.create(&PostParams::default(), &config_map("one", &[("k", "1")])).await.unwrap();
    cms.create(&PostParams::default(), &config_map("two", &[])).await.unwrap();
    let one = ObjectRef::<ConfigMap>::new("one").within("default");
    eventually("two objects in the store", || reader.state().len() == 2).await;
    cms.patch("one", &PatchParams::default(), &Patch::Merge(json!({ "data": { "k": "2" } }))).await.unwrap();
    eventually("the patched value", || {
        reader.get(&one).is_some_and(|cm| cm.data.as_ref().is_some_and(|d| d["k"] == "2"))
    })
    .await;
    cms.delete("two", &DeleteParams::default()).await.unwrap();
    eventually("the deletion", || reader.state().len() == 1).await;
}

#[tokio::test]
async fn raw_watch_resumes_bookmarks_times_out_and_expires() {
    let fake = FakeKube::with_history(1000);
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
    let first = cms.create(&PostParams::default(), &config_map("c1", &[])).await.unwrap();
    let from = first.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &config_map("c2", &[])).await.unwrap();
    cms.create(&PostParams::default(), &config_map("c3", &[])).await.unwrap();

    // Resuming from c1's resourceVersion replays what came after it; the stream ends at its timeout.
    let started = std::time::Instant::now();
    let params = WatchParams::default().timeout(2);
    let events: Vec<WatchEvent<ConfigMap>> =
        cms.watch(&params, &from).await.unwrap().try_collect().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1900));
    let added: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(cm) => cm.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(added, vec!["c2", "c3"]);
    assert!(events.iter().any(|e| matches!(e, WatchEvent::Bookmark(_))), "bookmarks were asked for");

    for i in 0..1000 {
        cms.patch("c3", &PatchParams::default(), &Patch::Merge(json!({ "data": { "i": i.to_string() } })))
            .await
            .unwrap();
    }
    let mut stream = cms.watch(&WatchParams::default().timeout(5), &from).await.unwrap().boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        Some(Err(kube::Error::Api(status))) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}
