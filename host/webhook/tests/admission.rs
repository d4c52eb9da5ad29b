//! `kubeop admission` against the project's fake API server, over HTTPS as the API server calls
//! it: the CA is read from the webhook configuration's caBundle (where the webhook injected it)
//! and the serving certificate is verified for the Service's DNS name. Real AdmissionReview v1
//! fixtures (tests/fixtures) in the shapes Kubernetes sends are allowed or denied as specified;
//! the patch applied to the object gives the expected labels; hostile plugins are contained by
//! the failure mode; swapping the plugin file changes the next decision with no restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ObjectMeta, PostParams};
use kubeop_fake_kube::FakeKube;
use kubeop_plugins::{NoUploads, Plugins};
use kubeop_webhook::server::Metrics;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const ACME: &str = "t_01jd5x7k3q9m2n4p6r8s0t1acm";
const ACME_WEB: &str = "p_01jd5x7k3q9m2n4p6r8s0t1v2w";
const GLOBEX: &str = "t_01jd5x7k3q9m2n4p6r8s0t1glx";
const SERVICE_NAME: &str = "kubeop-admission.kubeop-system.svc";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn guest(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins/wasm32-wasip2/release").join(file)
}

fn namespace(name: &str, ids: Option<(&str, &str)>) -> Namespace {
    let labels = ids.map(|(tenant, project)| {
        BTreeMap::from([
            ("paas.kubeop.io/tenant-id".to_owned(), tenant.to_owned()),
            ("paas.kubeop.io/project-id".to_owned(), project.to_owned()),
        ])
    });
    Namespace {
        metadata: ObjectMeta { name: Some(name.into()), labels, ..ObjectMeta::default() },
        ..Namespace::default()
    }
}

fn ingress(namespace: &str, name: &str, host: &str) -> Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"rules": [{"host": host}]},
    }))
    .unwrap()
}

fn policy(audit: &[&str]) -> ConfigMap {
    let document = json!({
        "imageAllowlist": ["docker.io", "ghcr.io"],
        "egressBaseline": ["10.0.0.0/8"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"},
        "allowedHosts": ["*.example.com"],
        "auditRules": audit,
    });
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeop-policy", "namespace": "kubeop-system"},
        "data": {"policy.json": document.to_string()},
    }))
    .unwrap()
}

/// A cluster as deploy/ and the manager leave it: kubeop-system with the policy and the webhook
/// configurations, acme's project namespace, globex's with an Ingress for store.example.com, and
/// the platform's own Ingress for console.example.com.
async fn cluster() -> FakeKube {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeKube::new();
    let client = fake.client();
    let create = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&create, &namespace("kubeop-system", None)).await.unwrap();
    namespaces.create(&create, &namespace("kubeop-acme-web", Some((ACME, ACME_WEB)))).await.unwrap();
    namespaces
        .create(&create, &namespace("kubeop-globex-store", Some((GLOBEX, "p_01jd5x7k3q9m2n4p6r8s0t1sto"))))
        .await
        .unwrap();
    Api::<Ingress>::namespaced(client.clone(), "kubeop-globex-store")
        .create(&create, &ingress("kubeop-globex-store", "store", "store.example.com"))
        .await
        .unwrap();
    Api::<Ingress>::namespaced(client.clone(), "kubeop-system")
        .create(&create, &ingress("kubeop-system", "console", "console.example.com"))
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "kubeop-system")
        .create(&create, &policy(&[]))
        .await
        .unwrap();
    let text = include_str!("../../../deploy/admission/webhooks.yaml");
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        if document["kind"] == "ValidatingWebhookConfiguration" {
            let config: ValidatingWebhookConfiguration = serde_json::from_value(document).unwrap();
            Api::all(client.clone()).create(&create, &config).await.unwrap();
        } else {
            let config: MutatingWebhookConfiguration = serde_json::from_value(document).unwrap();
            Api::all(client.clone()).create(&create, &config).await.unwrap();
        }
    }
    fake
}

/// A running webhook and an HTTPS client that trusts only the injected CA.
struct Webhook {
    port: u16,
    tls: tokio_rustls::TlsConnector,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

struct Options {
    failure_mode: &'static str,
    plugin_file: Option<&'static str>,
    /// `plugins.deadline_ms` and `plugins.max_concurrent_calls`, when not the defaults.
    deadline_ms: Option<u64>,
    max_concurrent_calls: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self { failure_mode: "deny", plugin_file: None, deadline_ms: None, max_concurrent_calls: None }
    }
}

async fn start(fake: &FakeKube, options: Options) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    if let Some(file) = options.plugin_file {
        std::fs::copy(guest(file), dir.path().join("admission.wasm")).unwrap();
    }
    let mut config = kubeop_config::Config::default();
    config.plugins.dir = dir.path().to_owned();
    config.plugins.sync_interval_ms = 100;
    config.admission.failure_mode = options.failure_mode.into();
    config.plugins.deadline_ms = options.deadline_ms.unwrap_or(config.plugins.deadline_ms);
    config.plugins.max_concurrent_calls =
        options.max_concurrent_calls.unwrap_or(config.plugins.max_concurrent_calls);
    let (metrics, plugin_metrics) = Metrics::with_plugins().unwrap();
    let plugins = Plugins::start(&config.plugins, None, Arc::new(NoUploads), plugin_metrics).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let fallback = kubeop_core::PlatformPolicy::default();
    let client = fake.client();
    let admission = config.admission.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        kubeop_webhook::process::run(client, &admission, plugins, metrics, fallback, listener, shutdown)
            .await
            .unwrap();
    });
    // The API server trusts what the caBundle says; so does this client.
    let deadline = Instant::now() + Duration::from_secs(10);
    let bundle = loop {
        let config: ValidatingWebhookConfiguration =
            Api::all(fake.client()).get("kubeop-admission").await.unwrap();
        let bundle = config.webhooks.unwrap()[0].client_config.ca_bundle.clone();
        if let Some(bundle) = bundle {
            break bundle.0;
        }
        assert!(Instant::now() < deadline, "the webhook never injected its CA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&bundle).unwrap()).unwrap();
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let webhook =
        Webhook { port, tls: tokio_rustls::TlsConnector::from(Arc::new(tls)), _stop: stop, _dir: dir };
    // Ready once the namespaces, Ingresses and policy are read.
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook.get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the webhook never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    webhook
}

impl Webhook {
    async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let name = ServerName::try_from(SERVICE_NAME).unwrap();
        let stream = self.tls.connect(name, tcp).await.expect("the CA and the Service name verify");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVICE_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (status, body) = self.send("GET", path, Vec::new()).await;
        (status, String::from_utf8(body).unwrap())
    }

    /// The AdmissionReview answered for `review` at `path` (/validate or /mutate).
    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.send("POST", path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"], "the uid is echoed");
        answer["response"].clone()
    }
}

fn message(response: &Value) -> String {
    response["status"]["message"].as_str().unwrap_or_default().to_owned()
}

/// Applies a JSON Patch the way the API server does. `patch` is Go's `[]byte`: kube's types
/// write it as an array of numbers, which Go's JSON decoder reads like the base64 form.
fn apply(object: &Value, response: &Value) -> Value {
    use base64::Engine as _;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes: Vec<u8> = match &response["patch"] {
        Value::String(text) => base64::engine::general_purpose::STANDARD.decode(text).unwrap(),
        Value::Array(numbers) => numbers.iter().map(|n| n.as_u64().unwrap() as u8).collect(),
        other => panic!("no patch: {other}"),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

#[tokio::test]
async fn fixtures_are_allowed_and_denied_as_specified_over_tls() {
    let fake = cluster().await;
    let webhook = start(&fake, Options::default()).await;

    // CREATE of a Deployment with three containers from allowed registries.
    let review = fixture("deployment-create-allowed");
    let validated = webhook.review("/validate", &review).await;
    assert_eq!(validated["allowed"], true, "{validated}");
    let mutated = webhook.review("/mutate", &review).await;
    assert_eq!(mutated["allowed"], true);
    let patched = apply(&review["request"]["object"], &mutated);
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "shop", "app.kubeop.io/managed-by": "kubeop"}),
        "the patch adds the managed-by label and keeps the others"
    );
    let mut expected = review["request"]["object"].clone();
    expected["metadata"]["labels"]["app.kubeop.io/managed-by"] = json!("kubeop");
    assert_eq!(patched, expected, "the patch changes nothing else");

    // Each denial names the rule and the field path.
    let denied: &[(&str, &str)] = &[
        ("deployment-create-denied-registry", "[image-registry] spec.template.spec.containers[1].image"),
        ("deployment-create-dry-run", "[image-registry] spec.template.spec.containers[1].image"),
        (
            "deployment-update-privileged",
            "[privileged] spec.template.spec.containers[2].securityContext.privileged",
        ),
        ("app-outside-kubeop", "[app-namespace]"),
        ("ingress-host-collision", "[host-collision] spec.rules[0].host"),
        ("ingress-host-not-allowed", "[allowed-hosts] spec.rules[0].host"),
        ("httproute-platform-host", "[host-collision] spec.hostnames[0]"),
        ("networkpolicy-egress-outside-baseline", "[egress-baseline] spec.egress[0].to[1].ipBlock.cidr"),
        ("resourcequota-over-max", "[quota-max] spec.hard[requests.cpu]"),
        ("project-without-tenant", "[project-tenant] spec.tenantRef"),
        ("service-loadbalancer", "[service-type] spec.type"),
    ];
    for (name, expected) in denied {
        let response = webhook.review("/validate", &fixture(name)).await;
        assert_eq!(response["allowed"], false, "{name}: {response}");
        let text = message(&response);
        assert!(text.contains(expected), "{name}: {text}");
    }
    // Only the denied entries: the other container, the ipBlock inside the baseline, memory.
    let registry = message(&webhook.review("/validate", &fixture("deployment-create-denied-registry")).await);
    assert!(!registry.contains("containers[0]") && !registry.contains("containers[2]"), "{registry}");
    let egress =
        message(&webhook.review("/validate", &fixture("networkpolicy-egress-outside-baseline")).await);
    assert!(!egress.contains("to[0]"), "{egress}");
    // Another tenant's host is named, never its tenant or namespace.
    let collision = message(&webhook.review("/validate", &fixture("ingress-host-collision")).await);
    assert!(collision.contains("another tenant"), "{collision}");
    assert!(!collision.contains(GLOBEX) && !collision.contains("kubeop-globex-store"), "{collision}");
    let platform = message(&webhook.review("/validate", &fixture("httproute-platform-host")).await);
    assert!(platform.contains("the platform"), "{platform}");

    // What is allowed: a free host, DELETE with no object, the scale subresource, a clean pod
    // outside kubeop's namespaces. DELETE and scale get no patch.
    for name in ["ingress-host-allowed", "pod-delete", "deployment-scale", "pod-outside-kubeop"] {
        let response = webhook.review("/validate", &fixture(name)).await;
        assert_eq!(response["allowed"], true, "{name}: {response}");
    }
    for name in ["pod-delete", "deployment-scale"] {
        let response = webhook.review("/mutate", &fixture(name)).await;
        assert_eq!(response["allowed"], true, "{name}");
        assert!(response.get("patch").is_none(), "{name}: {response}");
    }

    // The counters saw them.
    let (status, metrics) = webhook.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"kubeop_admission_reviews_total{endpoint="validate",outcome="denied"}"#),
        "{metrics}"
    );
    assert_eq!(webhook.get("/healthz").await, (200, "ok".to_owned()));
}

#[tokio::test]
async fn a_rule_in_audit_mode_warns_instead_of_denying() {
    let fake = cluster().await;
    let webhook = start(&fake, Options::default()).await;
    let service = fixture("service-loadbalancer");
    assert_eq!(webhook.review("/validate", &service).await["allowed"], false);
    // The manager's PUT /v1/platform/policy lands in the ConfigMap; the webhook follows its watch.
    Api::<ConfigMap>::namespaced(fake.client(), "kubeop-system")
        .replace("kubeop-policy", &PostParams::default(), &policy(&["service-type"]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = webhook.review("/validate", &service).await;
        if response["allowed"] == true {
            break response;
        }
        assert!(Instant::now() < deadline, "the policy change never reached the webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let warnings = response["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().starts_with("audit: [service-type] spec.type")),
        "{response}"
    );
    // Other rules still deny.
    assert_eq!(
        webhook.review("/validate", &fixture("deployment-create-denied-registry")).await["allowed"],
        false
    );
}

#[tokio::test]
async fn bad_bodies_get_an_invalid_answer_and_the_server_carries_on() {
    let fake = cluster().await;
    let webhook = start(&fake, Options::default()).await;
    for body in [
        b"{not json".to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#.to_vec(),
        b"{}".to_vec(),
    ] {
        let (status, answer) = webhook.send("POST", "/validate", body).await;
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        assert_eq!(answer["response"]["status"]["reason"], "InvalidRequest", "{answer}");
    }
    // Over admission.max_review_bytes: refused before it is read whole.
    let (status, _) = webhook.send("POST", "/validate", vec![b' '; 9 * 1024 * 1024]).await;
    assert_eq!(status, 413);
    assert_eq!(webhook.review("/validate", &fixture("deployment-create-allowed")).await["allowed"], true);
}

/// The hostile plugin misbehaves by the reviewed object's name.
fn named(name: &str) -> Value {
    let mut review = fixture("deployment-create-allowed");
    review["request"]["name"] = json!(name);
    review["request"]["object"]["metadata"]["name"] = json!(name);
    review
}

#[tokio::test]
async fn hostile_plugins_are_contained_by_the_failure_mode() {
    let fake = cluster().await;
    let webhook =
        start(&fake, Options { plugin_file: Some("hostile_admission.wasm"), ..Options::default() }).await;
    for (name, expected) in
        [("loop", "deadline"), ("memory", "memory limit"), ("trap", "trapped"), ("huge-message", "output")]
    {
        let started = Instant::now();
        let response = webhook.review("/validate", &named(name)).await;
        assert_eq!(response["allowed"], false, "{name}: {response}");
        let text = message(&response);
        assert!(text.contains("the admission plugin failed") && text.contains(expected), "{name}: {text}");
        assert!(text.contains("failure mode deny"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(3), "{name} took {:?}", started.elapsed());
        // The next review is answered as usual.
        assert_eq!(webhook.review("/validate", &named("fine")).await["allowed"], true);
    }
    let (_, metrics) = webhook.get("/metrics").await;
    assert!(metrics.contains(r#"outcome="plugin_failed""#), "{metrics}");

    let lenient = start(
        &fake,
        Options { plugin_file: Some("hostile_admission.wasm"), failure_mode: "allow", ..Options::default() },
    )
    .await;
    let response = lenient.review("/validate", &named("loop")).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(warning.contains("deadline") && warning.contains("failure mode allow"), "{warning}");
}

/// One plugin call at a time, each looping to a 2 s deadline: the second review waits 2 s for
/// its turn, so it cannot finish within the review deadline (3 s) and the failure mode answers
/// it then, before the API server's own 5 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_queued_past_the_deadline_get_the_failure_mode() {
    let fake = cluster().await;
    let options = Options {
        plugin_file: Some("hostile_admission.wasm"),
        deadline_ms: Some(2000),
        max_concurrent_calls: Some(1),
        ..Options::default()
    };
    let webhook = Arc::new(start(&fake, options).await);
    let started = Instant::now();
    let looping = named("loop");
    let (first, second) =
        tokio::join!(webhook.review("/validate", &looping), webhook.review("/validate", &looping));
    let elapsed = started.elapsed();
    let texts = [message(&first), message(&second)];
    assert!(texts.iter().any(|t| t.contains("2000 ms deadline")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("no answer within 3 s")), "{texts:?}");
    assert!(texts.iter().all(|t| t.contains("failure mode deny")), "{texts:?}");
    assert!(elapsed < Duration::from_millis(4500), "answered after {elapsed:?}");
}

#[tokio::test]
async fn swapping_the_plugin_file_changes_the_next_decision_without_a_restart() {
    let fake = cluster().await;
    let webhook = start(&fake, Options::default()).await;
    let review = fixture("deployment-create-allowed");
    assert_eq!(webhook.review("/validate", &review).await["allowed"], true);
    // The example policy denies Deployments without a team label.
    std::fs::copy(guest("require_team_label.wasm"), webhook._dir.path().join("admission.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = webhook.review("/validate", &review).await;
        if response["allowed"] == false {
            break response;
        }
        assert!(Instant::now() < deadline, "the new plugin never took over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(message(&response).contains("[team-label] metadata.labels.team"), "{response}");
    // And back: removing the file returns to the built-in.
    std::fs::remove_file(webhook._dir.path().join("admission.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook.review("/validate", &review).await["allowed"] != true {
        assert!(Instant::now() < deadline, "the built-in never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
