//! The admission part of the platform: the policy's admission fields, hosts checked on apps, and
//! `POST /v1/admission/review` with the active plugin or an uploaded candidate.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json, guest};
use crate::kube::{cluster, eventually, register, service_account_client, validate_strictly};

both_engines!(
    the_policy_carries_the_admission_settings,
    app_hosts_follow_the_allowed_hosts,
    a_pasted_review_is_decided_with_the_databases_context,
    a_candidate_is_tried_before_it_is_rolled_out,
    an_upload_reaches_the_webhook_through_the_database,
);

/// An AdmissionReview v1 for a Pod with one container, as the API server sends it.
pub fn pod_review(namespace: &str) -> Value {
    review(
        namespace,
        ("", "v1", "Pod", "pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace},
               "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.27"}]}}),
    )
}

fn review(
    namespace: &str,
    (group, version, kind, resource): (&str, &str, &str, &str),
    object: Value,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b7a1c52-2d3e-4f60-8a1b-9c0d1e2f3a4b",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
        }
    })
}

pub(crate) fn deployment(namespace: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    review(
        namespace,
        ("apps", "v1", "Deployment", "deployments"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shop", "namespace": namespace, "labels": {"app": "shop"}},
               "spec": {"template": {"spec": {"containers": containers}}}}),
    )
}

async fn project(app: &TestApp, tenant: &str) -> Value {
    let id = app.create_project(tenant, "web").await;
    expect_json(app.get(&format!("/v1/projects/{id}")).await, StatusCode::OK).await
}

async fn the_policy_carries_the_admission_settings(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let policy = json!({
        "imageAllowlist": ["docker.io"],
        "allowedHosts": ["*.apps.example.com", "Shop.Example.com"],
        "allowedServiceTypes": ["LoadBalancer"],
        "auditRules": ["host-collision"],
    });
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    let stored = expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await;
    assert_eq!(stored["allowedHosts"], json!(["*.apps.example.com", "shop.example.com"]));
    assert_eq!(stored["allowedServiceTypes"], json!(["LoadBalancer"]));
    assert_eq!(stored["auditRules"], json!(["host-collision"]));
    // Each bad entry is a 400 naming its field and entry, and changes nothing.
    for (body, field) in [
        (json!({"allowedHosts": ["*.com"]}), "allowedHosts"),
        (json!({"allowedHosts": ["a.*.example.com"]}), "allowedHosts"),
        (json!({"allowedHosts": ["ok.example.com", "bad host"]}), "allowedHosts: entry 1"),
        (json!({"allowedServiceTypes": ["ClusterIP"]}), "allowedServiceTypes"),
        (json!({"allowedServiceTypes": ["HostPort"]}), "allowedServiceTypes"),
        (json!({"auditRules": ["Not A Rule"]}), "auditRules"),
        (json!({"allowedHosts": "a.example.com"}), "allowedHosts"),
        (json!({"allowedHosts": vec!["a.example.com"; 257]}), "allowedHosts"),
    ] {
        expect_error(app.put("/v1/platform/policy", &body).await, StatusCode::BAD_REQUEST, field).await;
    }
    assert_eq!(expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await, stored);
}

async fn app_hosts_follow_the_allowed_hosts(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let policy = json!({"allowedHosts": ["*.apps.example.com"]});
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    let body = |name: &str, host: &str| json!({"projectID": project, "name": name, "image": "docker.io/library/nginx:1.27", "host": host});
    let refused = app.post("/v1/apps", &body("bank", "login.bank.test")).await;
    expect_error(refused, StatusCode::BAD_REQUEST, "login.bank.test").await;
    // One label under the wildcard, no more.
    let deep = app.post("/v1/apps", &body("deep", "a.shop.apps.example.com")).await;
    expect_error(deep, StatusCode::BAD_REQUEST, "allowedHosts: *.apps.example.com").await;
    let created =
        expect_json(app.post("/v1/apps", &body("shop", "shop.apps.example.com")).await, StatusCode::OK).await;
    let update = json!({"ID": created["id"], "Host": "evil.test"});
    expect_error(app.put("/v1/apps", &update).await, StatusCode::BAD_REQUEST, "evil.test").await;
    let apps = expect_json(app.get(&format!("/v1/apps?projectID={project}")).await, StatusCode::OK).await;
    assert_eq!(apps.as_array().unwrap().len(), 1, "only the allowed app was written: {apps}");
    assert_eq!(apps[0]["host"], "shop.apps.example.com");
}

async fn a_pasted_review_is_decided_with_the_databases_context(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let web = project(&app, &acme).await;
    let store = project(&app, &globex).await;
    let namespace = web["namespace"].as_str().unwrap();
    let policy = json!({"imageAllowlist": ["docker.io", "ghcr.io"]});
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    let shop = json!({"projectID": store["id"], "name": "shop", "image": "docker.io/library/nginx:1.27",
                      "host": "shop.example.com"});
    expect_json(app.post("/v1/apps", &shop).await, StatusCode::OK).await;

    let allowed = expect_json(
        app.post("/v1/admission/review", &deployment(namespace, &["nginx:1.27"])).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["context"]["tenantID"], acme);
    assert_eq!(allowed["context"]["projectID"], web["id"]);
    assert_eq!(allowed["plugin"]["candidate"], false);
    // The patch /mutate would answer, as JSON.
    assert_eq!(allowed["patch"][0]["op"], "add", "{allowed}");

    let denied = deployment(namespace, &["nginx:1.27", "evil.io/x:1"]);
    let denied = expect_json(app.post("/v1/admission/review", &denied).await, StatusCode::OK).await;
    assert_eq!(denied["allowed"], false);
    let message = denied["message"].as_str().unwrap();
    assert!(message.contains("[image-registry] spec.template.spec.containers[1].image"), "{message}");

    // Another tenant's app already serves the host.
    let ingress = review(
        namespace,
        ("networking.k8s.io", "v1", "Ingress", "ingresses"),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "shop", "namespace": namespace},
               "spec": {"rules": [{"host": "shop.example.com"}]}}),
    );
    let collision = expect_json(app.post("/v1/admission/review", &ingress).await, StatusCode::OK).await;
    assert_eq!(collision["allowed"], false, "{collision}");
    assert!(
        collision["message"].as_str().unwrap().contains("[host-collision] spec.rules[0].host"),
        "{collision}"
    );
    assert_eq!(collision["context"]["hostClaims"][0]["tenantID"], globex);

    // Over the body limit: 413, before it is read whole.
    let huge = json!({"apiVersion": "admission.k8s.io/v1", "padding": "x".repeat(app.config().http.body_limit_bytes)});
    expect_error(app.post("/v1/admission/review", &huge).await, StatusCode::PAYLOAD_TOO_LARGE, "bytes").await;
    // Not an AdmissionReview: 400.
    for body in [json!({}), json!({"apiVersion": "admission.k8s.io/v1beta1", "request": {}}), json!([1])] {
        expect_error(
            app.post("/v1/admission/review", &body).await,
            StatusCode::BAD_REQUEST,
            "AdmissionReview",
        )
        .await;
    }
}

async fn a_candidate_is_tried_before_it_is_rolled_out(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let web = project(&app, &tenant).await;
    let namespace = web["namespace"].as_str().unwrap();
    let upload = |slot: &str, bytes: Vec<u8>| {
        app.request(Method::POST, &format!("/v1/platform/plugins/{slot}/candidates"))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
    };
    let candidate = expect_json(
        upload("admission", guest("require_team_label.wasm")).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let sha = candidate["sha256"].as_str().unwrap().to_owned();
    assert_eq!(candidate["slot"], "admission");

    let unlabelled = deployment(namespace, &["nginx:1.27"]);
    let tried = expect_json(
        app.post(&format!("/v1/admission/review?plugin={sha}"), &unlabelled).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tried["allowed"], false, "{tried}");
    assert_eq!(tried["plugin"], json!({"sha256": sha, "candidate": true}));
    assert!(tried["message"].as_str().unwrap().contains("[team-label] metadata.labels.team"), "{tried}");
    // The active plugin is untouched: it still allows, and the slot still runs the built-in.
    let active = expect_json(app.post("/v1/admission/review", &unlabelled).await, StatusCode::OK).await;
    assert_eq!(active["allowed"], true, "{active}");
    let slots = expect_json(app.get("/v1/platform/plugins").await, StatusCode::OK).await;
    let admission = slots.as_array().unwrap().iter().find(|s| s["slot"] == "admission").unwrap();
    assert_eq!(admission["source"], "builtin");

    // A hostile candidate fails its call, contained, and the answer says so.
    let hostile =
        expect_json(upload("admission", guest("hostile_admission.wasm")).await.unwrap(), StatusCode::CREATED)
            .await;
    let mut looping = unlabelled.clone();
    looping["request"]["object"]["metadata"]["name"] = json!("loop");
    let path = format!("/v1/admission/review?plugin={}", hostile["sha256"].as_str().unwrap());
    let contained = expect_json(app.post(&path, &looping).await, StatusCode::OK).await;
    assert_eq!(contained["allowed"], false);
    assert!(contained["pluginError"].as_str().unwrap().contains("deadline"), "{contained}");

    // Bad input: 4xx, nothing kept.
    let unknown = format!("/v1/admission/review?plugin={}", "0".repeat(64));
    expect_error(app.post(&unknown, &unlabelled).await, StatusCode::NOT_FOUND, "no candidate plugin").await;
    expect_error(
        app.post("/v1/admission/review?plugin=abc", &unlabelled).await,
        StatusCode::BAD_REQUEST,
        "sha256",
    )
    .await;
    expect_error(
        upload("image-policy", guest("require_team_label.wasm")).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "only the admission slot",
    )
    .await;
    expect_error(
        upload("admission", b"not wasm".to_vec()).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "plugin refused",
    )
    .await;
    expect_error(
        upload("admission", guest("deny_latest.wasm")).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "admission world",
    )
    .await;
    expect_error(
        upload("nope", guest("require_team_label.wasm")).await.unwrap(),
        StatusCode::NOT_FOUND,
        "nope",
    )
    .await;
}

/// `kubeop admission` with nothing but deploy/'s ServiceAccount token, against a cluster the
/// manager bootstrapped (the fake enforces RBAC): it writes its certificate Secret and its CA
/// into the webhook configurations, watches what it reads, and is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_rbac_is_all_the_webhook_needs() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::Api;

    let (fake, https) = cluster().await;
    let app = TestApp::spawn(Engine::Sqlite).await;
    let registered =
        expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let query = format!("?clusterID={}", registered["id"].as_str().unwrap());
    expect_json(app.post(&format!("/v1/platform/bootstrap{query}"), &json!({})).await, StatusCode::OK).await;
    let client = service_account_client(&fake, &https, "kubeop-admission").await;
    fake.clear_requests();

    let settings = kubeop_config::Config::default();
    let (metrics, plugin_metrics) = kubeop_webhook::server::Metrics::with_plugins().unwrap();
    let plugins = kubeop_plugins::Plugins::start(
        &settings.plugins,
        None,
        std::sync::Arc::new(kubeop_plugins::NoUploads),
        plugin_metrics,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let webhook = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        let fallback = kubeop_core::PlatformPolicy::default();
        kubeop_webhook::process::run(
            client,
            &settings.admission,
            plugins,
            metrics,
            fallback,
            listener,
            shutdown,
        )
        .await
    });

    let secrets: Api<Secret> = Api::namespaced(fake.client(), "kubeop-system");
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(fake.client());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let injected = configs.get("kubeop-admission").await.unwrap().webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .is_some();
        if injected && secrets.get_opt("kubeop-admission-tls").await.unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the webhook never wrote its certificate and CA");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let account = "system:serviceaccount:kubeop-system:kubeop-admission";
    eventually("the webhook lists what it watches", || {
        let listed: Vec<String> = fake
            .requests()
            .into_iter()
            .filter(|r| r.user == account && r.method == "GET" && r.status == 200)
            .map(|r| r.path)
            .collect();
        [
            "/api/v1/namespaces",
            "/apis/networking.k8s.io/v1/ingresses",
            "/api/v1/namespaces/kubeop-system/configmaps",
        ]
        .iter()
        .all(|path| listed.iter().any(|p| p == path))
    })
    .await;
    let refused: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.user == account && r.status == 403)
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(refused.is_empty(), "deploy/admission/rbac.yaml is missing grants: {refused:?}");
    // What it wrote passes the Kubernetes schemas.
    let secret = fake.object("v1", "secrets", Some("kubeop-system"), "kubeop-admission-tls").unwrap();
    let validating = fake
        .object(
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            None,
            "kubeop-admission",
        )
        .unwrap();
    let mutating = fake
        .object("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", None, "kubeop-admission")
        .unwrap();
    validate_strictly(&[secret, validating, mutating]).await;
    let _ = stop.send(());
    webhook.await.unwrap().unwrap();
}

/// `kubeop admission` with `admission.database = true` reads uploads as the manager's replicas
/// do: `PUT /v1/platform/plugins/admission` on the manager changes the webhook's next decision.
async fn an_upload_reaches_the_webhook_through_the_database(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let web = project(&app, &tenant).await;
    // The webhook's plugin host, wired as `kubeop admission` wires it.
    let store = kubeop_api::open_store(app.config(), &kubeop_api::metrics::Metrics::new()).await.unwrap();
    let (_, plugin_metrics) = kubeop_webhook::server::Metrics::with_plugins().unwrap();
    let webhook = kubeop_plugins::Plugins::start(
        &app.config().plugins,
        None,
        std::sync::Arc::new(kubeop_api::uploads::StoreUploads(store)),
        plugin_metrics,
    )
    .await
    .unwrap();
    let sync = webhook.spawn_sync();
    let review = kubeop_webhook::review::Review::parse(
        &serde_json::to_vec(&deployment(web["namespace"].as_str().unwrap(), &["nginx:1.27"])).unwrap(),
    )
    .unwrap();
    let context = kubeop_webhook::review::Context {
        tenant: Some(tenant.clone()),
        project: web["id"].as_str().map(str::to_owned),
        claims: Vec::new(),
    };
    let check = review.check(context, &kubeop_core::PlatformPolicy::default());
    assert!(webhook.admit(&check, None).await.unwrap().allowed);

    expect_json(app.upload_plugin("admission", guest("require_team_label.wasm")).await, StatusCode::OK).await;
    let uploaded = std::time::Instant::now();
    loop {
        let verdict = webhook.admit(&check, None).await.unwrap();
        if !verdict.allowed {
            assert!(verdict.message.unwrap().contains("[team-label]"));
            break;
        }
        assert!(
            uploaded.elapsed() < std::time::Duration::from_secs(3),
            "the webhook still runs the built-in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sync.abort();
}
