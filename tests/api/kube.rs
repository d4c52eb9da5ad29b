//! Kubernetes: registered clusters, the resources the database implies kept in step by the
//! reconciler, and project kubeconfigs, against the project's fake API server over HTTPS with
//! the real `kube::Client` (and the real `kubectl` where it is installed).

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};
use kubeop_fake_kube::{FakeKube, Https};

pub(crate) const CRD: &str = "paas.kubeop.io/v1alpha1";

/// A fake cluster over HTTPS with kubeop's CRDs installed (what the bootstrap will do).
pub(crate) async fn cluster() -> (FakeKube, Https) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeKube::new();
    let crds: Api<CustomResourceDefinition> = Api::all(fake.client());
    for crd in kubeop_crds::definitions() {
        crds.create(&PostParams::default(), &crd).await.expect("the fake takes kubeop's CRDs");
    }
    let https = fake.serve_https().await.expect("the fake serves HTTPS");
    (fake, https)
}

pub(crate) async fn register(app: &TestApp, name: &str, kubeconfig: &str) -> reqwest::Response {
    app.post("/v1/clusters", &json!({"name": name, "kubeconfig": BASE64.encode(kubeconfig)})).await
}

/// A tenant `acme` on a registered cluster; its id.
pub(crate) async fn tenant_on(app: &TestApp, cluster: &Value) -> String {
    let body = json!({"name": "acme", "clusterID": cluster["id"]});
    expect_json(app.post("/v1/tenants", &body).await, StatusCode::OK).await["id"].as_str().unwrap().to_owned()
}

/// Sets a resource's `Ready` condition on the fake, as the operator will.
async fn report_ready(
    fake: &FakeKube,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let resource = kube::discovery::ApiResource {
        group: "paas.kubeop.io".into(),
        version: "v1alpha1".into(),
        api_version: CRD.into(),
        kind: String::new(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(fake.client(), namespace, &resource),
        None => Api::all_with(fake.client(), &resource),
    };
    let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-11-29T00:00:00Z"});
    let patch = kube::api::Patch::Merge(json!({"status": {"conditions": [condition]}}));
    api.patch_status(name, &kube::api::PatchParams::default(), &patch)
        .await
        .expect("the fake takes the status");
}

/// Polls `check` until it holds (the reconciler works in the background).
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client with nothing but `account`'s token (a ServiceAccount in kubeop-system), as its pod
/// would have: the fake enforces RBAC for it.
pub(crate) async fn service_account_client(fake: &FakeKube, https: &Https, account: &str) -> kube::Client {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};

    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: vec![], expiration_seconds: Some(3600), bound_object_ref: None },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(fake.client(), "kubeop-system")
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let kubeconfig = https.kubeconfig(account, &token, "kubeop-system");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

pub(crate) fn name_of(id: &str) -> String {
    id.replace('_', "-")
}

both_engines!(
    resources_follow_the_database,
    an_unreachable_cluster_only_delays,
    a_crash_between_commit_and_apply_loses_nothing
);

async fn resources_follow_the_database(engine: Engine) {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let cluster_id = cluster["id"].as_str().unwrap();
    assert!(cluster_id.starts_with("c_"));
    assert_eq!(cluster["server"], https.url.as_str());
    assert!(cluster.get("kubeconfig").is_none(), "the kubeconfig is never shown");

    let tenant = expect_json(
        app.post("/v1/tenants", &json!({"name": "acme", "clusterID": cluster_id})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["clusterID"], cluster_id);
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    let project = app.create_project(&tenant, "web").await;
    let app_id = app.create_app(&project, "site", "site.example.com").await;

    eventually("the tenant, project, namespace and app exist", || {
        fake.object(CRD, "apps", Some("kubeop-acme-web"), &name_of(&app_id)).is_some()
    })
    .await;
    let tenant_object = fake.object(CRD, "tenants", None, &name_of(&tenant)).unwrap();
    assert_eq!(tenant_object["spec"], json!({"name": "acme"}));
    let project_object = fake.object(CRD, "projects", None, &name_of(&project)).unwrap();
    assert_eq!(
        project_object["spec"],
        json!({"tenantRef": name_of(&tenant), "name": "web", "namespace": "kubeop-acme-web"})
    );
    assert_eq!(project_object["metadata"]["labels"]["paas.kubeop.io/tenant-id"], tenant.as_str());
    let namespace = fake.object("v1", "namespaces", None, "kubeop-acme-web").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["paas.kubeop.io/project-id"], project.as_str());
    let app_object = fake.object(CRD, "apps", Some("kubeop-acme-web"), &name_of(&app_id)).unwrap();
    assert_eq!(app_object["spec"]["image"], "docker.io/library/nginx:1.25");
    assert_eq!(app_object["spec"]["host"], "site.example.com");
    assert_eq!(app_object["spec"]["projectRef"], name_of(&project));
    let applies: Vec<_> = fake.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert!(!applies.is_empty());
    assert!(
        applies.iter().all(|r| r.field_manager.as_deref() == Some("kubeop")
            && r.content_type.as_deref().is_some_and(|c| c.contains("apply-patch"))),
        "every write is a server-side apply by the one field manager: {applies:?}"
    );

    // Status: applied, and nobody (no operator yet) reported it ready.
    let got = expect_json(app.get(&format!("/v1/projects/{project}")).await, StatusCode::OK).await;
    assert_eq!(got["status"]["state"], "pending", "{got}");
    assert_eq!(got["status"]["namespace"], "kubeop-acme-web");
    // What the operator will do: report the resources' conditions. The manager shows them from
    // its watch, without asking the cluster on the request.
    report_ready(&fake, "projects", None, &name_of(&project), "True", "Reconciled", "namespace ready").await;
    report_ready(
        &fake,
        "apps",
        Some("kubeop-acme-web"),
        &name_of(&app_id),
        "False",
        "ImagePullBackOff",
        "image not found",
    )
    .await;
    let project_path = format!("/v1/projects/{project}");
    let app_path = format!("/v1/apps/{app_id}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let project_state = expect_json(app.get(&project_path).await, StatusCode::OK).await;
        let app_state = expect_json(app.get(&app_path).await, StatusCode::OK).await;
        if project_state["status"]["state"] == "ready" && app_state["status"]["state"] == "error" {
            assert_eq!(project_state["status"]["message"], "namespace ready");
            assert_eq!(app_state["status"]["message"], "ImagePullBackOff: image not found");
            assert_eq!(app_state["status"]["namespace"], "kubeop-acme-web");
            assert_eq!(app_state["name"], "site", "the app's own fields are still there");
            break;
        }
        assert!(Instant::now() < deadline, "statuses never showed: {project_state} {app_state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A rename changes the spec, never the object.
    let renamed = app.put("/v1/projects", &json!({"ID": project, "Name": "www"})).await;
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);
    eventually("the project's spec shows the new name", || {
        fake.object(CRD, "projects", None, &name_of(&project)).is_some_and(|p| p["spec"]["name"] == "www")
    })
    .await;

    assert_eq!(app.delete(&format!("/v1/apps/{app_id}")).await.status(), StatusCode::NO_CONTENT);
    eventually("the app is gone", || {
        fake.object(CRD, "apps", Some("kubeop-acme-web"), &name_of(&app_id)).is_none()
    })
    .await;

    assert_eq!(app.delete(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NO_CONTENT);
    eventually("the tenant, its project and namespace are gone", || {
        fake.object(CRD, "tenants", None, &name_of(&tenant)).is_none()
            && fake.object(CRD, "projects", None, &name_of(&project)).is_none()
            && fake.object("v1", "namespaces", None, "kubeop-acme-web").is_none()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count_rows("kube_outbox").await > 0 {
        assert!(Instant::now() < deadline, "every mark is completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nothing uses the cluster any more: it can go.
    assert_eq!(app.delete(&format!("/v1/clusters/{cluster_id}")).await.status(), StatusCode::NO_CONTENT);
}

async fn an_unreachable_cluster_only_delays(engine: Engine) {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn_with(engine, |config| {
        config.kube.retry_min_ms = 50;
        config.kube.retry_max_ms = 200;
    })
    .await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = tenant_on(&app, &cluster).await;

    fake.set_down(true);
    let started = Instant::now();
    let project = app.create_project(&tenant, "web").await;
    assert!(started.elapsed() < Duration::from_secs(2), "the request does not wait on the cluster");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(fake.object(CRD, "projects", None, &name_of(&project)).is_none());
    assert!(app.count_rows("kube_outbox").await > 0, "the cluster is known to be behind");
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = expect_json(app.get(&format!("/v1/projects/{project}")).await, StatusCode::OK).await;
        if got["status"]["state"] == "error" {
            break got;
        }
        assert!(Instant::now() < deadline, "failed applies show, with why: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = got["status"]["message"].as_str().unwrap();
    assert!(message.contains("retrying") && message.contains("unavailable"), "{message}");
    let status = expect_json(
        app.get(&format!("/v1/clusters/{}/status", cluster["id"].as_str().unwrap())).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["reachable"], false);
    assert!(status["error"].as_str().unwrap().contains("unavailable"), "{status}");

    fake.set_down(false);
    eventually("the project arrives once the cluster is back", || {
        fake.object(CRD, "projects", None, &name_of(&project)).is_some()
    })
    .await;
    let status = expect_json(
        app.get(&format!("/v1/clusters/{}/status", cluster["id"].as_str().unwrap())).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["version"], "v1.33.0");
    assert_eq!(status["crdsInstalled"], true);
}

async fn a_crash_between_commit_and_apply_loses_nothing(engine: Engine) {
    let (fake, https) = cluster().await;
    let mut app = TestApp::spawn(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = tenant_on(&app, &cluster).await;
    fake.set_down(true);
    let project = app.create_project(&tenant, "web").await;
    // The server dies with the change committed and not applied.
    app.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.set_down(false);
    let successor = app.replica().await;
    eventually("the successor applies what the dead server committed", || {
        fake.object(CRD, "projects", None, &name_of(&project)).is_some()
    })
    .await;
    drop(successor);
}

/// PostgreSQL only: replicas on SQLite would be processes sharing a file, which kubeop does not
/// support for the reconciler (its lease is a PostgreSQL advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_apply_each_change_once() {
    let (fake, https) = cluster().await;
    let primary = TestApp::spawn(Engine::Postgres).await;
    let cluster =
        expect_json(register(&primary, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = tenant_on(&primary, &cluster).await;
    let replica = primary.replica().await;
    // Both have looked for clusters to take over at least once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    fake.clear_requests();
    let mut projects = Vec::new();
    for n in 0..30 {
        let via = if n % 2 == 0 { &primary } else { &replica };
        projects.push(via.create_project(&tenant, &format!("p{n}")).await);
    }
    eventually("every project reached the cluster", || {
        projects.iter().all(|p| fake.object(CRD, "projects", None, &name_of(p)).is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applies = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with("/apis/paas.kubeop.io/v1alpha1/projects/"))
        .count();
    assert_eq!(applies, 30, "one replica holds the cluster's lease: each change is applied once");
    // And it is the one that took the cluster first, though half the changes were the other's.
    let applied_by = |metrics: String| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("kubeop_kube_reconciles_total") && l.contains(r#"kind="project""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let primary_metrics = primary.get("/metrics").await.text().await.unwrap();
    let replica_metrics = replica.get("/metrics").await.text().await.unwrap();
    assert_eq!((applied_by(primary_metrics), applied_by(replica_metrics)), (30, 0));
}

both_engines!(a_default_cluster_configured_later_receives_what_exists);

async fn a_default_cluster_configured_later_receives_what_exists(engine: Engine) {
    let (fake, https) = cluster().await;
    let mut app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    assert_eq!(app.count_rows("kube_outbox").await, 0, "no cluster yet: nothing to apply");
    app.kill();
    // The operator points kube.default at a cluster and restarts: the reconciler takes the
    // cluster over and applies everything that already exists.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig()).unwrap();
    let successor = app
        .replica_with(|config| {
            config.kube.default = kubeop_config::DefaultCluster::Kubeconfig;
            config.kube.kubeconfig = kubeconfig.clone();
        })
        .await;
    eventually("the existing tenant and project reach the default cluster", || {
        fake.object(CRD, "tenants", None, &name_of(&tenant)).is_some()
            && fake.object(CRD, "projects", None, &name_of(&project)).is_some()
    })
    .await;
    let got = expect_json(successor.get(&format!("/v1/projects/{project}")).await, StatusCode::OK).await;
    assert!(got["status"]["state"].is_string(), "the default cluster's projects have a status: {got}");
}

both_engines!(bad_kubeconfigs_are_refused, tenants_without_a_cluster_get_503_for_cluster_endpoints_only);

async fn bad_kubeconfigs_are_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| config.kube.request_timeout_ms = 500).await;
    let bad = app.post("/v1/clusters", &json!({"name": "x", "kubeconfig": "%%%"})).await;
    expect_error(bad, StatusCode::BAD_REQUEST, "not base64").await;
    expect_error(register(&app, "x", "clusters: [unclosed").await, StatusCode::BAD_REQUEST, "not valid YAML")
        .await;
    let no_context =
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n";
    expect_error(register(&app, "x", no_context).await, StatusCode::BAD_REQUEST, "no current-context").await;
    let exec = "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
                clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    exec:\n      \
                apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n";
    expect_error(register(&app, "x", exec).await, StatusCode::BAD_REQUEST, "`exec`").await;
    // A free port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
         clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\nusers:\n- name: u\n  user:\n    token: t\n"
    );
    let error = expect_error(
        register(&app, "x", &unreachable).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster x is unavailable",
    )
    .await;
    assert!(!error.contains("token: t"), "no secret in the message: {error}");
    // A server that takes the connection and never answers: refused once the timeout passes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let started = Instant::now();
    let slow = unreachable.replace(&format!(":{port}"), &format!(":{silent_port}"));
    expect_error(
        register(&app, "x", &slow).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster x is unavailable",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5), "kube.request_timeout_ms bounds the wait");
    held.abort();
    assert_eq!(app.count_rows("clusters").await, 0, "nothing was registered");
    expect_error(
        app.get("/v1/clusters/c_01jd5x7k3q9m2n4p6r8s0t1v2w").await,
        StatusCode::NOT_FOUND,
        "not found",
    )
    .await;
    let unknown =
        app.post("/v1/tenants", &json!({"name": "acme", "clusterID": "c_01jd5x7k3q9m2n4p6r8s0t1v2w"})).await;
    expect_error(unknown, StatusCode::NOT_FOUND, "cluster c_01jd5x7k3q9m2n4p6r8s0t1v2w not found").await;
    assert_eq!(app.count_rows("tenants").await, 0);
}

async fn tenants_without_a_cluster_get_503_for_cluster_endpoints_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let answer = app.get(&format!("/v1/kubeconfigs/project/{project}")).await;
    expect_error(
        answer,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("no cluster configured for tenant {tenant}"),
    )
    .await;
    expect_error(
        app.get("/v1/kubeconfigs/kubeop-acme-web").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no cluster",
    )
    .await;
    // Everything else works, and no change waits for a cluster that does not exist.
    let site = app.create_app(&project, "site", "site.example.com").await;
    let got = expect_json(app.get(&format!("/v1/projects/{project}")).await, StatusCode::OK).await;
    assert!(got.get("status").is_none(), "no cluster, no status: {got}");
    let got = expect_json(app.get(&format!("/v1/apps/{site}")).await, StatusCode::OK).await;
    assert!(got.get("status").is_none(), "no cluster, no status: {got}");
    assert_eq!(app.count_rows("kube_outbox").await, 0);
}

both_engines!(a_project_kubeconfig_reaches_its_namespace_only);

async fn a_project_kubeconfig_reaches_its_namespace_only(engine: Engine) {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn_with_auth(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = tenant_on(&app, &cluster).await;
    let project = app.create_project(&tenant, "web").await;
    let other = app.create_project(&tenant, "db").await;

    // A project token may fetch its own kubeconfig, not another project's.
    let token = expect_json(
        app.post("/v1/jwt/project", &json!({"ProjectID": project, "TTLMinutes": 60})).await,
        StatusCode::OK,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .request_as(&token, reqwest::Method::GET, &format!("/v1/kubeconfigs/project/{other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused =
        app.request_as(&token, reqwest::Method::GET, "/v1/kubeconfigs/kubeop-acme-web").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "the namespace endpoint is for admins");
    let issued = app
        .request_as(&token, reqwest::Method::GET, &format!("/v1/kubeconfigs/project/{project}?ttlMinutes=30"))
        .send()
        .await
        .unwrap();
    let issued: Value = expect_json(issued, StatusCode::OK).await;
    let yaml = issued["kubeconfig"].as_str().unwrap();
    let expires: chrono::DateTime<chrono::Utc> = issued["expires_at"].as_str().unwrap().parse().unwrap();
    let lifetime = expires - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::minutes(29) && lifetime <= chrono::Duration::minutes(30),
        "{lifetime}"
    );
    assert!(
        yaml.contains(&https.url) && !yaml.contains(&https.admin_token),
        "the project's own credential: {yaml}"
    );

    // The token is the fake cluster's own, for the ServiceAccount bound to `edit` in the namespace.
    let binding = fake
        .object(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            Some("kubeop-acme-web"),
            "kubeop-project-edit",
        )
        .unwrap();
    assert_eq!(binding["roleRef"]["name"], "edit");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    assert_eq!(config.default_namespace, "kubeop-acme-web");
    let client = kube::Client::try_from(config).unwrap();
    let own: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    let accounts = own.list(&ListParams::default()).await.expect("its own namespace is readable");
    assert!(accounts.items.iter().any(|sa| sa.metadata.name.as_deref() == Some("kubeop-project")));
    let elsewhere: Api<ServiceAccount> = Api::namespaced(client, "kube-system");
    match elsewhere.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("another namespace must be forbidden: {other:?}"),
    }

    // The real kubectl agrees, with the same file.
    if std::path::Path::new("/usr/bin/kubectl").exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubeconfig.yaml");
        std::fs::write(&file, yaml).unwrap();
        let kubectl = |namespace: &str| {
            std::process::Command::new("/usr/bin/kubectl")
                .arg("--kubeconfig")
                .arg(&file)
                .args(["get", "--raw", &format!("/api/v1/namespaces/{namespace}/serviceaccounts")])
                .output()
                .unwrap()
        };
        let own = kubectl("kubeop-acme-web");
        assert!(own.status.success(), "kubectl: {}", String::from_utf8_lossy(&own.stderr));
        assert!(String::from_utf8_lossy(&own.stdout).contains("kubeop-project"));
        let other = kubectl("kube-system");
        assert!(!other.status.success());
        assert!(
            String::from_utf8_lossy(&other.stderr).contains("Forbidden"),
            "{}",
            String::from_utf8_lossy(&other.stderr)
        );
    } else {
        eprintln!("kubectl not installed: skipping its half of the check");
    }

    // Bad lifetimes are refused before anything is asked of the cluster.
    expect_error(
        app.get(&format!("/v1/kubeconfigs/project/{project}?ttlMinutes=5")).await,
        StatusCode::BAD_REQUEST,
        "ttlMinutes",
    )
    .await;
    expect_error(
        app.get(&format!("/v1/kubeconfigs/project/{project}?ttlMinutes=99999")).await,
        StatusCode::BAD_REQUEST,
        "ttlMinutes",
    )
    .await;
    // The admin's namespace endpoint: a namespace that does not exist is a 404, a bad name a 400.
    expect_error(
        app.get("/v1/kubeconfigs/kubeop-nobody").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no cluster",
    )
    .await;
    expect_error(app.get("/v1/kubeconfigs/Not_A_Name").await, StatusCode::BAD_REQUEST, "namespace").await;
    let admin = expect_json(app.get("/v1/kubeconfigs/kubeop-acme-web").await, StatusCode::OK).await;
    assert!(admin["kubeconfig"].as_str().unwrap().contains("namespace: kubeop-acme-web"));

    // Every built-in object kubeop wrote passes the Kubernetes schemas, strictly.
    let written = [
        fake.object("v1", "namespaces", None, "kubeop-acme-web"),
        fake.object("v1", "serviceaccounts", Some("kubeop-acme-web"), "kubeop-project"),
        fake.object(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            Some("kubeop-acme-web"),
            "kubeop-project-edit",
        ),
    ];
    let mut objects: Vec<Value> = written.into_iter().map(Option::unwrap).collect();
    // And the CustomResourceDefinitions kubeop ships (deploy/crds/ holds the same).
    objects.extend(kubeop_crds::definitions().iter().map(|crd| serde_json::to_value(crd).unwrap()));
    validate_strictly(&objects).await;
}

/// `kubernetes-validate --strict` for Kubernetes 1.33 (the version kubeop is built for).
pub(crate) async fn validate_strictly(objects: &[Value]) {
    static READY: tokio::sync::OnceCell<std::path::PathBuf> = tokio::sync::OnceCell::const_new();
    let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/kube/requirements.txt");
    let venv = READY.get_or_init(|| crate::openapi::tool_virtualenv("kube", requirements)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(venv.join("bin/kubernetes-validate"));
    command.args(["--strict", "-k", "1.33.0"]);
    for (index, object) in objects.iter().enumerate() {
        let path = dir.path().join(format!("{index}.json"));
        std::fs::write(&path, serde_json::to_vec(object).unwrap()).unwrap();
        command.arg(path);
    }
    let output = command.output().await.unwrap();
    crate::openapi::assert_succeeded("kubernetes-validate --strict", &output);
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(report.matches("passed").count(), objects.len(), "{report}");
}

both_engines!(kms_rotation_keeps_every_secret);

async fn kms_rotation_keeps_every_secret(engine: Engine) {
    let (_fake, https) = cluster().await;
    let app = TestApp::spawn(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let id = cluster["id"].as_str().unwrap();
    let old = app.config().kms.master_key.clone().unwrap();

    // An unknown master key fails loudly and changes nothing.
    let mut stranger = app.config().clone();
    stranger.kms.master_key = Some(kubeop_config::KmsKey::from_bytes(vec![7; 32]));
    let error = kubeop_api::rotate_kms(&stranger).await.unwrap_err().to_string();
    assert!(error.contains(id) && error.contains("previous_keys"), "{error}");

    // A new master key with the old one for reading: every secret is re-sealed.
    let mut rotated = app.config().clone();
    rotated.kms.master_key = Some(kubeop_config::KmsKey::from_bytes(vec![9; 32]));
    rotated.kms.previous_keys = vec![old];
    assert_eq!(kubeop_api::rotate_kms(&rotated).await.unwrap(), (1, 1));
    assert_eq!(kubeop_api::rotate_kms(&rotated).await.unwrap(), (0, 1), "nothing left to re-seal");

    // The new key alone opens it: a server without the old key still reaches the cluster.
    let mut only_new = rotated.clone();
    only_new.kms.previous_keys.clear();
    only_new.http.addr = kubeop_config::ListenAddr::parse("127.0.0.1:0").unwrap();
    only_new.db.url = app.config().database_url();
    only_new.data_dir = tempfile::tempdir().unwrap().keep();
    let server = kubeop_api::Server::build(&only_new).await.unwrap();
    let status =
        server.state().clusters.status(Some(&kubeop_core::ClusterId::parse(id).unwrap())).await.unwrap();
    assert!(status.reachable, "{status:?}");
}

/// The same flow against a real cluster, when `KUBEOP_TEST_KUBECONFIG` names an admin
/// kubeconfig (e.g. kind's; see the README). Skipped otherwise. It installs kubeop's CRDs,
/// registers the cluster, and removes what it created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_real_cluster() {
    let Ok(path) = std::env::var("KUBEOP_TEST_KUBECONFIG") else {
        eprintln!("KUBEOP_TEST_KUBECONFIG is not set: skipping the real-cluster suite");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let yaml = std::fs::read_to_string(&path).expect("KUBEOP_TEST_KUBECONFIG names a readable file");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let admin = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap(),
    )
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in kubeop_crds::definitions() {
        let name = crd.metadata.name.clone().unwrap();
        let apply = kube::api::PatchParams::apply("kubeop-test").force();
        crds.patch(&name, &apply, &kube::api::Patch::Apply(&crd)).await.expect("kubeop's CRDs install");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the API server starts serving them

    let app = TestApp::spawn(Engine::Sqlite).await;
    let cluster = expect_json(register(&app, "real", &yaml).await, StatusCode::OK).await;
    let status = expect_json(
        app.get(&format!("/v1/clusters/{}/status", cluster["id"].as_str().unwrap())).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (status["reachable"].as_bool(), status["crdsInstalled"].as_bool()),
        (Some(true), Some(true)),
        "{status}"
    );
    let suffix = &ulid::Ulid::generate().to_string().to_lowercase()[20..];
    let tenant_name = format!("e2e{suffix}");
    let body = json!({"name": tenant_name, "clusterID": cluster["id"]});
    let tenant = expect_json(app.post("/v1/tenants", &body).await, StatusCode::OK).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = app.create_project(&tenant, "web").await;
    let namespace = format!("kubeop-{tenant_name}-web");
    let projects: Api<kubeop_crds::Project> = Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while projects.get_opt(&name_of(&project)).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the Project resource never appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let issued =
        expect_json(app.get(&format!("/v1/kubeconfigs/project/{project}")).await, StatusCode::OK).await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(issued["kubeconfig"].as_str().unwrap()).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap(),
    )
    .unwrap();
    let own: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    own.list(&ListParams::default()).await.expect("the project's kubeconfig reads its namespace");
    let elsewhere: Api<ServiceAccount> = Api::namespaced(client, "kube-system");
    assert!(
        matches!(elsewhere.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 403)
    );

    assert_eq!(app.delete(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while projects.get_opt(&name_of(&project)).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the Project resource was never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_engines!(a_cluster_refusing_kubeops_credentials_is_a_502);

/// kubeop registered with credentials that may only read: the cluster's 403 is kubeop's
/// problem, not the caller's, so it answers 502 naming what it was not allowed to do.
async fn a_cluster_refusing_kubeops_credentials_is_a_502(engine: Engine) {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};

    let (fake, https) = cluster().await;
    let admin = fake.client();
    let meta = |name: &str, namespace: Option<&str>| kube::api::ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &Namespace { metadata: meta("ops", None), ..Default::default() })
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "ops");
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount { metadata: meta("reader", Some("ops")), ..Default::default() },
        )
        .await
        .unwrap();
    let binding = ClusterRoleBinding {
        metadata: meta("reader-view", None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some("ops".into()),
            api_group: None,
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin).create(&PostParams::default(), &binding).await.unwrap();
    let request = TokenRequest {
        metadata: Default::default(),
        spec: TokenRequestSpec { audiences: vec![], expiration_seconds: Some(3600), bound_object_ref: None },
        status: None,
    };
    let token = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;

    let app = TestApp::spawn(engine).await;
    let cluster = expect_json(
        register(&app, "read-only", &https.kubeconfig("reader", &token, "ops")).await,
        StatusCode::OK,
    )
    .await;
    let tenant = tenant_on(&app, &cluster).await;
    let project = app.create_project(&tenant, "web").await;
    let error = expect_error(
        app.get(&format!("/v1/kubeconfigs/project/{project}")).await,
        StatusCode::BAD_GATEWAY,
        "refused kubeop",
    )
    .await;
    assert!(error.contains("patch") && error.contains("namespaces"), "names the verb and resource: {error}");
    assert!(!error.contains(&token), "no credential in the message");
}
