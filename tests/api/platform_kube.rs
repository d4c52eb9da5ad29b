//! The seed's "Platform Management" against a cluster: bootstrap, status, autoscale, and the
//! policy ConfigMap on every registered cluster, on the project's fake API server over HTTPS.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};
use crate::kube::{cluster, eventually, register, validate_strictly};
use kubeop_api::auth::Caller;
use kubeop_fake_kube::{FakeKube, Https};

/// A manager with one registered fake cluster (served while the `Https` lives); the app and
/// `?clusterID=…`.
async fn with_cluster(engine: Engine) -> (FakeKube, Https, TestApp, String) {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let query = format!("?clusterID={}", cluster["id"].as_str().unwrap());
    (fake, https, app, query)
}

/// `(kind, name, result)` of a bootstrap answer.
fn results(answer: &Value) -> Vec<(String, String, String)> {
    answer["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["name"].as_str().unwrap().to_owned(),
                a["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every object of the platform as the fake holds it, by (apiVersion, plural, namespace, name).
fn platform_objects(fake: &FakeKube) -> BTreeMap<String, Value> {
    let kinds = [
        ("apiextensions.k8s.io/v1", "customresourcedefinitions", None),
        ("v1", "namespaces", None),
        ("v1", "configmaps", Some("kubeop-system")),
        ("v1", "serviceaccounts", Some("kubeop-system")),
        ("v1", "services", Some("kubeop-system")),
        ("rbac.authorization.k8s.io/v1", "clusterroles", None),
        ("rbac.authorization.k8s.io/v1", "clusterrolebindings", None),
        ("rbac.authorization.k8s.io/v1", "roles", Some("kubeop-system")),
        ("rbac.authorization.k8s.io/v1", "rolebindings", Some("kubeop-system")),
        ("apps/v1", "deployments", Some("kubeop-system")),
        ("policy/v1", "poddisruptionbudgets", Some("kubeop-system")),
        ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", None),
        ("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", None),
    ];
    let mut found = BTreeMap::new();
    for (api_version, plural, namespace) in kinds {
        for object in fake.objects(api_version, plural, namespace) {
            let name = object["metadata"]["name"].as_str().unwrap().to_owned();
            found.insert(format!("{api_version} {plural} {name}"), object);
        }
    }
    found
}

#[tokio::test]
async fn bootstrap_installs_the_platform_once() {
    let (fake, _https, app, query) = with_cluster(Engine::Sqlite).await;
    let body = json!({"Image": "registry.example/kubeop:1.2.3", "ImagePullPolicy": "Always"});
    let first =
        expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &body).await, StatusCode::OK).await;
    let applied = results(&first);
    let kinds: Vec<&str> = applied.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(
        &kinds[..4],
        ["CustomResourceDefinition"; 3].iter().copied().chain(["Namespace"]).collect::<Vec<_>>()
    );
    assert_eq!(kinds.last(), Some(&"MutatingWebhookConfiguration"));
    assert_eq!(applied.len(), 23, "{applied:?}");
    let position =
        |kind: &str, name: &str| applied.iter().position(|(k, n, _)| k == kind && n == name).unwrap();
    assert!(position("ServiceAccount", "kubeop-operator") < position("Deployment", "kubeop-operator"));
    assert!(
        position("Deployment", "kubeop-admission")
            < position("ValidatingWebhookConfiguration", "kubeop-admission")
    );
    // The CRDs were there (the fake cluster starts with them); the rest is new, except what the
    // policy reconciler may have written since the cluster was registered.
    for (kind, name, result) in &applied {
        let expected: &[&str] = match (kind.as_str(), name.as_str()) {
            ("CustomResourceDefinition", _) => &["unchanged", "configured"],
            ("Namespace", _) | ("ConfigMap", _) => &["created", "configured", "unchanged"],
            _ => &["created"],
        };
        assert!(expected.contains(&result.as_str()), "{kind} {name}: {result}");
    }

    let before = platform_objects(&fake);
    fake.clear_requests();
    fake.advance_clock(std::time::Duration::from_secs(60));
    let second =
        expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &body).await, StatusCode::OK).await;
    assert!(results(&second).iter().all(|(_, _, result)| result == "unchanged"), "{second}");
    let after = platform_objects(&fake);
    let changed: Vec<(&String, &Value)> =
        after.iter().filter(|(key, object)| before.get(*key) != Some(object)).collect();
    assert!(
        changed.is_empty() && after.len() == before.len(),
        "the second bootstrap changes nothing: {changed:?}"
    );
    let writes: Vec<_> = fake.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert!(
        writes.iter().all(|r| r.method == "PATCH" && r.field_manager.as_deref() == Some("kubeop")),
        "server-side apply only: {writes:?}"
    );

    // The settings reached the objects.
    let operator = fake.object("apps/v1", "deployments", Some("kubeop-system"), "kubeop-operator").unwrap();
    let container = &operator["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/kubeop:1.2.3");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["args"], json!(["operator"]));
    let webhooks = fake
        .object(
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            None,
            "kubeop-admission",
        )
        .unwrap();
    assert_eq!(webhooks["webhooks"][0]["failurePolicy"], "Fail");
    let policy = fake.object("v1", "configmaps", Some("kubeop-system"), "kubeop-policy").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(policy["data"]["policy.json"].as_str().unwrap()).unwrap(),
        json!({"imageAllowlist": [], "egressBaseline": [], "quotaMax": {}})
    );

    // Everything written passes the Kubernetes 1.33 schemas, strictly.
    validate_strictly(&before.into_values().collect::<Vec<_>>()).await;
}

#[tokio::test]
async fn bootstrap_options_metrics_server_mocks_and_bad_input() {
    let (fake, _https, app, query) = with_cluster(Engine::Sqlite).await;
    let path = format!("/v1/platform/bootstrap{query}");
    for (body, needle) in [
        (json!({"Image": "Not An Image"}), "Image"),
        (json!({"ImagePullPolicy": "Sometimes"}), "ImagePullPolicy"),
        (json!({"WebhookFailurePolicy": "Maybe"}), "WebhookFailurePolicy"),
        (json!({"InstallMetricsServer": "yes"}), "InstallMetricsServer"),
        (json!({"Surprise": true}), "Surprise"),
    ] {
        expect_error(app.post(&path, &body).await, StatusCode::BAD_REQUEST, needle).await;
    }
    assert!(
        fake.requests().iter().all(|r| !r.path.contains("kubeop-system/deployments")),
        "bad input writes nothing"
    );

    let answer = expect_json(
        app.post(
            &path,
            &json!({"InstallMetricsServer": true, "Mocks": true, "WebhookFailurePolicy": "Ignore"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let applied = results(&answer);
    assert!(applied.iter().any(|(kind, name, _)| kind == "APIService" && name == "v1beta1.metrics.k8s.io"));
    assert!(!applied.iter().any(|(kind, _, _)| kind.ends_with("WebhookConfiguration")), "mocks: no webhooks");
    let admission = fake.object("apps/v1", "deployments", Some("kubeop-system"), "kubeop-admission").unwrap();
    let container = &admission["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.k8s.io/pause:3.10");
    assert!(container.get("readinessProbe").is_none());
    let metrics_server =
        fake.object("apps/v1", "deployments", Some("kube-system"), "metrics-server").unwrap();
    validate_strictly(&[metrics_server, admission]).await;

    // Without a cluster: 503; an unknown one: 404; a malformed id: 400.
    let bare = TestApp::spawn(Engine::Sqlite).await;
    expect_error(
        bare.post("/v1/platform/bootstrap", &json!({})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no cluster",
    )
    .await;
    expect_error(
        bare.post("/v1/platform/bootstrap?clusterID=c_01jd5x7k3q9m2n4p6r8s0t1v2w", &json!({})).await,
        StatusCode::NOT_FOUND,
        "not found",
    )
    .await;
    expect_error(
        bare.post("/v1/platform/bootstrap?clusterID=nope", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "clusterID",
    )
    .await;
    expect_error(bare.get("/v1/platform/status?clusterID=nope").await, StatusCode::BAD_REQUEST, "clusterID")
        .await;
}

/// Sets what the Deployment controller would report for a Deployment.
async fn report_available(fake: &FakeKube, name: &str, available: i32) {
    let api: Api<Deployment> = Api::namespaced(fake.client(), "kubeop-system");
    let status = if available > 0 { "True" } else { "False" };
    let reason = if available > 0 { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" };
    let patch = json!({"status": {"replicas": 2, "availableReplicas": available, "conditions": [{
        "type": "Available", "status": status, "reason": reason,
        "message": "Deployment does not have minimum availability.",
        "lastTransitionTime": "2026-11-29T00:00:00Z", "lastUpdateTime": "2026-11-29T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("the fake takes the status");
}

#[tokio::test]
async fn status_reads_deployments_and_webhooks() {
    let (fake, _https, app, query) = with_cluster(Engine::Sqlite).await;
    let path = format!("/v1/platform/status{query}");
    let status = expect_json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(
        (&status["operator"], &status["admission"], &status["webhookCABundle"]),
        (&json!(false), &json!(false), &json!(false))
    );
    assert!(status["problems"].to_string().contains("not installed"), "{status}");

    expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &json!({})).await, StatusCode::OK).await;
    let status = expect_json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["operator"], false, "installed is not running: {status}");
    assert!(
        status["problems"].to_string().contains("kubeop-operator: 0 of 2 replicas available"),
        "{status}"
    );

    report_available(&fake, "kubeop-operator", 0).await;
    let status = expect_json(app.get(&path).await, StatusCode::OK).await;
    assert!(
        status["problems"].to_string().contains("MinimumReplicasUnavailable"),
        "why, in the cluster's words: {status}"
    );

    report_available(&fake, "kubeop-operator", 2).await;
    report_available(&fake, "kubeop-admission", 1).await;
    let status = expect_json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(
        (&status["operator"], &status["admission"], &status["webhookCABundle"]),
        (&json!(true), &json!(true), &json!(false))
    );
    assert!(status["problems"].to_string().contains("caBundle"), "{status}");

    // What the admission webhook does when it starts: its CA into both configurations.
    for plural in ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"] {
        let mut config =
            fake.object("admissionregistration.k8s.io/v1", plural, None, "kubeop-admission").unwrap();
        config["webhooks"][0]["clientConfig"]["caBundle"] = json!("LS0tLS1CRUdJTg==");
        let patch = Patch::Merge(json!({"webhooks": config["webhooks"]}));
        if plural.starts_with("validating") {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(fake.client());
            api.patch("kubeop-admission", &PatchParams::default(), &patch).await.unwrap();
        } else {
            let api: Api<MutatingWebhookConfiguration> = Api::all(fake.client());
            api.patch("kubeop-admission", &PatchParams::default(), &patch).await.unwrap();
        }
    }
    let status = expect_json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(status, json!({"operator": true, "admission": true, "webhookCABundle": true, "problems": []}));
}

#[tokio::test]
async fn autoscale_creates_updates_and_removes_the_hpa() {
    let (fake, _https, app, query) = with_cluster(Engine::Sqlite).await;
    let path = format!("/v1/platform/autoscale{query}");
    let hpa = || {
        fake.object("autoscaling/v2", "horizontalpodautoscalers", Some("kubeop-system"), "kubeop-operator")
    };
    let enable = json!({"Enabled": true, "Min": 1, "Max": 3, "TargetCPU": 70});

    for (body, needle) in [
        (json!({"Enabled": true, "Min": 0, "Max": 3, "TargetCPU": 70}), "Min"),
        (json!({"Enabled": true, "Min": 4, "Max": 3, "TargetCPU": 70}), "Max"),
        (json!({"Enabled": true, "Min": 1, "Max": 1000, "TargetCPU": 70}), "Max"),
        (json!({"Enabled": true, "Min": 1, "Max": 3, "TargetCPU": 0}), "TargetCPU"),
        (json!({"Enabled": true, "Min": 1, "Max": 3, "TargetCPU": 101}), "TargetCPU"),
        (json!({"Enabled": true, "Min": 1, "Max": 3}), "TargetCPU"),
        (json!({"Enabled": true, "Min": 1, "Max": 3, "TargetCPU": 99999999999u64}), "TargetCPU"),
        (json!({"Min": 1, "Max": 3, "TargetCPU": 70}), "Enabled"),
        (json!({"Enabled": "yes"}), "Enabled"),
    ] {
        expect_error(app.post(&path, &body).await, StatusCode::BAD_REQUEST, needle).await;
        assert!(hpa().is_none(), "a refused request writes nothing: {body}");
    }

    let answer = expect_json(app.post(&path, &enable).await, StatusCode::OK).await;
    assert_eq!(answer["Enabled"], true);
    let spec = hpa().expect("the autoscaler exists")["spec"].clone();
    assert_eq!(spec["minReplicas"], 1);
    assert_eq!(spec["maxReplicas"], 3);
    assert_eq!(
        spec["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "kubeop-operator"})
    );
    assert_eq!(
        spec["metrics"][0]["resource"]["target"],
        json!({"type": "Utilization", "averageUtilization": 70})
    );
    validate_strictly(&[hpa().unwrap()]).await;

    expect_json(
        app.post(&path, &json!({"Enabled": true, "Min": 2, "Max": 5, "TargetCPU": 50})).await,
        StatusCode::OK,
    )
    .await;
    let spec = hpa().unwrap()["spec"].clone();
    assert_eq!((spec["minReplicas"].clone(), spec["maxReplicas"].clone()), (json!(2), json!(5)));
    assert_eq!(spec["metrics"][0]["resource"]["target"]["averageUtilization"], 50);

    // Bootstrap leaves the autoscaler alone (it is not one of deploy/'s objects).
    expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &json!({})).await, StatusCode::OK).await;
    assert_eq!(hpa().unwrap()["spec"]["maxReplicas"], 5);

    let off = expect_json(app.post(&path, &json!({"Enabled": false})).await, StatusCode::OK).await;
    assert_eq!(off["Enabled"], false);
    assert!(hpa().is_none(), "disabled: the autoscaler is gone");
    expect_json(app.post(&path, &json!({"Enabled": false})).await, StatusCode::OK).await;
}

#[tokio::test]
async fn platform_endpoints_are_for_admins_only() {
    let (_fake, https) = cluster().await;
    let app = TestApp::spawn_with_auth(Engine::Sqlite).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = app.create_tenant("acme").await;
    let token = app.mint(&Caller::Tenant {
        subject: "t".into(),
        tenant: kubeop_core::TenantId::parse(&tenant).unwrap(),
    });
    let query = format!("?clusterID={}", cluster["id"].as_str().unwrap());
    for (method, path, body) in [
        (reqwest::Method::POST, "/v1/platform/bootstrap", json!({})),
        (reqwest::Method::GET, "/v1/platform/status", json!(null)),
        (reqwest::Method::POST, "/v1/platform/autoscale", json!({"Enabled": false})),
    ] {
        let request = app.request_as(&token, method, &format!("{path}{query}"));
        let request = if body.is_null() { request } else { request.json(&body) };
        let response = request.send().await.unwrap();
        expect_error(response, StatusCode::FORBIDDEN, "admins").await;
    }
}

both_engines!(policy_reaches_every_cluster_even_one_that_was_down);

async fn policy_reaches_every_cluster_even_one_that_was_down(engine: Engine) {
    let (up, up_https) = cluster().await;
    let (down, down_https) = cluster().await;
    let app = TestApp::spawn_with(engine, |config| {
        config.kube.retry_min_ms = 50;
        config.kube.retry_max_ms = 200;
    })
    .await;
    expect_json(register(&app, "up", &up_https.admin_kubeconfig()).await, StatusCode::OK).await;
    expect_json(register(&app, "down", &down_https.admin_kubeconfig()).await, StatusCode::OK).await;
    let policy_of = |fake: &FakeKube| {
        fake.object("v1", "configmaps", Some("kubeop-system"), "kubeop-policy")
            .map(|c| serde_json::from_str::<Value>(c["data"]["policy.json"].as_str().unwrap()).unwrap())
    };
    eventually("each registered cluster gets the policy in force", || {
        policy_of(&up).is_some() && policy_of(&down).is_some()
    })
    .await;

    down.set_down(true);
    let policy = json!({"imageAllowlist": ["docker.io", "ghcr.io"], "egressBaseline": ["10.0.0.0/8"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"}});
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    eventually("the cluster that is up has the new policy", || policy_of(&up).as_ref() == Some(&policy))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_ne!(policy_of(&down).as_ref(), Some(&policy), "the cluster that is down could not get it yet");

    down.set_down(false);
    eventually("the cluster that was down gets it once it is back", || {
        policy_of(&down).as_ref() == Some(&policy)
    })
    .await;
    let config_map = up.object("v1", "configmaps", Some("kubeop-system"), "kubeop-policy").unwrap();
    let namespace = up.object("v1", "namespaces", None, "kubeop-system").unwrap();
    validate_strictly(&[config_map, namespace]).await;
    assert_eq!(app.count_rows("kube_outbox").await, 0, "nothing left behind");
}

/// `deploy/` is plain YAML that `kubectl apply -k` takes (the real kubectl, where installed:
/// the fake serves no OpenAPI document, so kubectl's own schema check is off; the schemas are
/// checked by kubernetes-validate above), and bootstrap then finds everything in place.
#[tokio::test]
async fn kubectl_applies_the_kustomization_bootstrap_agrees() {
    let kubectl = std::path::Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("kubectl not installed: skipping");
        return;
    }
    // A bare cluster: kubectl installs the CRDs too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeKube::new();
    let https = fake.serve_https().await.unwrap();
    let app = TestApp::spawn(Engine::Sqlite).await;
    let cluster = expect_json(register(&app, "bare", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let query = format!("?clusterID={}", cluster["id"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig()).unwrap();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let output = tokio::process::Command::new(kubectl)
        .args(["apply", "--server-side", "--validate=false", "-k", deploy])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .unwrap();
    crate::openapi::assert_succeeded("kubectl apply -k deploy/", &output);
    let applied = String::from_utf8_lossy(&output.stdout);
    assert_eq!(applied.matches("serverside-applied").count(), 23, "{applied}");
    assert!(fake.object("apps/v1", "deployments", Some("kubeop-system"), "kubeop-operator").is_some());

    let answer =
        expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &json!({})).await, StatusCode::OK)
            .await;
    let created: Vec<_> = results(&answer).into_iter().filter(|(_, _, result)| result == "created").collect();
    assert!(created.is_empty(), "kubectl installed the same objects: {created:?}");
}

/// Bootstrap, status, autoscale and a CronJob run against a real cluster when
/// `KUBEOP_TEST_KUBECONFIG` names an admin kubeconfig (kind's: see the README); skipped
/// otherwise. A development install (`Mocks`: the pause image, no webhooks), so it needs no
/// kubeop image; the Deployments must really become available (so it needs a cluster that runs
/// pods: against the fake API server it waits in vain). Removes what it installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_against_a_real_cluster() {
    let Ok(path) = std::env::var("KUBEOP_TEST_KUBECONFIG") else {
        eprintln!("KUBEOP_TEST_KUBECONFIG is not set: skipping the real-cluster platform suite");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let yaml = std::fs::read_to_string(&path).expect("KUBEOP_TEST_KUBECONFIG names a readable file");
    let app = TestApp::spawn(Engine::Sqlite).await;
    let cluster = expect_json(register(&app, "real", &yaml).await, StatusCode::OK).await;
    let query = format!("?clusterID={}", cluster["id"].as_str().unwrap());
    let installed = expect_json(
        app.post(&format!("/v1/platform/bootstrap{query}"), &json!({"Mocks": true})).await,
        StatusCode::OK,
    )
    .await;
    let again = expect_json(
        app.post(&format!("/v1/platform/bootstrap{query}"), &json!({"Mocks": true})).await,
        StatusCode::OK,
    )
    .await;
    assert!(results(&again).iter().all(|(_, _, result)| result == "unchanged"), "{again}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let status = expect_json(app.get(&format!("/v1/platform/status{query}")).await, StatusCode::OK).await;
        if status["operator"] == true && status["admission"] == true {
            assert_eq!(status["webhookCABundle"], false, "mocks install no webhooks: {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the Deployments never became available: {status}");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let scale = json!({"Enabled": true, "Min": 1, "Max": 2, "TargetCPU": 80});
    expect_json(app.post(&format!("/v1/platform/autoscale{query}"), &scale).await, StatusCode::OK).await;
    expect_json(
        app.post(&format!("/v1/platform/autoscale{query}"), &json!({"Enabled": false})).await,
        StatusCode::OK,
    )
    .await;

    // Clean up: everything bootstrap created, cluster-scoped objects included (not the CRDs,
    // which other suites share).
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let admin = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap(),
    )
    .unwrap();
    let delete = kube::api::DeleteParams::background();
    for (kind, name, _) in results(&installed) {
        let outcome = match kind.as_str() {
            "Namespace" => Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
                .delete(&name, &delete)
                .await
                .map(drop),
            "ClusterRole" => Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
                .delete(&name, &delete)
                .await
                .map(drop),
            "ClusterRoleBinding" => Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
                .delete(&name, &delete)
                .await
                .map(drop),
            _ => Ok(()),
        };
        if let Err(kube::Error::Api(status)) = &outcome {
            assert_eq!(status.code, 404, "cleaning up {kind} {name}: {status:?}");
        }
    }
}

/// The seed's "Platform Management" snippets, in its order and with its bodies, against a
/// default cluster (`kube.default = "kubeconfig"`), as an operator would paste them.
#[tokio::test]
async fn the_seeds_platform_snippets_work_as_written() {
    let (fake, https) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig()).unwrap();
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        config.kube.default = kubeop_config::DefaultCluster::Kubeconfig;
        config.kube.kubeconfig = kubeconfig.clone();
    })
    .await;
    expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await;
    let policy = json!({"imageAllowlist": ["docker.io", "ghcr.io"], "egressBaseline": ["10.0.0.0/8", "172.16.0.0/12"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"}});
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    let scale = json!({"Enabled": true, "Min": 1, "Max": 3, "TargetCPU": 70});
    expect_json(app.post("/v1/platform/autoscale", &scale).await, StatusCode::OK).await;
    let answer = expect_json(
        app.post("/v1/platform/bootstrap", &json!({"InstallMetricsServer": true, "Mocks": true})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["cluster"], "default");
    let status = expect_json(app.get("/v1/platform/status").await, StatusCode::OK).await;
    for key in ["operator", "admission", "webhookCABundle"] {
        assert_eq!(status[key], false, "nothing runs pods on the fake: {status}");
    }
    eventually("the policy reaches the default cluster", || {
        fake.object("v1", "configmaps", Some("kubeop-system"), "kubeop-policy").is_some_and(|c| {
            serde_json::from_str::<Value>(c["data"]["policy.json"].as_str().unwrap()).unwrap() == policy
        })
    })
    .await;
    assert!(
        fake.object("autoscaling/v2", "horizontalpodautoscalers", Some("kubeop-system"), "kubeop-operator")
            .is_some()
    );
    assert!(
        fake.object("apiregistration.k8s.io/v1", "apiservices", None, "v1beta1.metrics.k8s.io").is_some()
    );
}
