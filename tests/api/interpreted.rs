//! JavaScript and Python plugins through the API, as an operator uses them: swapped into a slot
//! live, tried as a candidate. Their components take seconds to compile, so these also check that
//! the compile happens off the request path: an upload answers after it, a review never waits on
//! it.

use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admission::deployment;
use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json, retagged};
use crate::languages::build_example;

both_engines!(a_javascript_candidate_compiles_off_the_review_path);

/// Uploads take a JavaScript or Python compile (10–20 s, more on a loaded machine running the
/// whole suite): a request timeout above that, as an operator with slow nodes would set.
fn patient(config: &mut kubeop_config::Config) {
    config.http.request_timeout_ms = 300_000;
}

/// A candidate another replica took is compiled here in the background: its first review is
/// answered 503 with Retry-After at once, not after the compile; once compiled, the JavaScript
/// plugin decides the review, and the server answered other requests meanwhile.
async fn a_javascript_candidate_compiles_off_the_review_path(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let web = app.create_project(&tenant, "web").await;
    let web = expect_json(app.get(&format!("/v1/projects/{web}")).await, StatusCode::OK).await;
    let namespace = web["namespace"].as_str().unwrap();
    let js = build_example("testing/js-require-team-label", "npm", "Node.js 18 or later with npm");
    // A hash no other test compiled in this process, so this server really has to compile it.
    let component = retagged(&js, &format!("{engine:?}-{}", ulid::Ulid::generate()));
    let sha = app.keep_candidate_elsewhere("admission", &component).await;
    let path = format!("/v1/admission/review?plugin={sha}");
    let unlabelled = deployment(namespace, &["nginx:1.27"]);

    let asked = Instant::now();
    let response = app.post(&path, &unlabelled).await;
    let waited = asked.elapsed();
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
        Some("5".into())
    );
    let message =
        expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "being compiled on this replica").await;
    assert!(message.contains(&sha), "{message}");
    // The review waited its patience (2 s), not the compile.
    assert!(waited < Duration::from_secs(10), "the review waited {waited:?}");

    // Meanwhile the server answers as usual.
    expect_json(app.get(&format!("/v1/tenants/{tenant}")).await, StatusCode::OK).await;

    let tried = loop {
        let response = app.post(&path, &unlabelled).await;
        if response.status() == StatusCode::OK {
            break expect_json(response, StatusCode::OK).await;
        }
        expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "compiled").await;
        assert!(asked.elapsed() < Duration::from_secs(300), "still compiling after 5 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(tried["plugin"], json!({"sha256": sha, "candidate": true}));
    assert_eq!(tried["allowed"], false, "{tried}");
    assert!(tried["message"].as_str().unwrap().contains("[team-label] metadata.labels.team"), "{tried}");
    let mut labelled = unlabelled.clone();
    labelled["request"]["object"]["metadata"]["labels"]["team"] = json!("payments");
    let allowed = expect_json(app.post(&path, &labelled).await, StatusCode::OK).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    // The active plugin is untouched.
    let active = expect_json(app.post("/v1/admission/review", &unlabelled).await, StatusCode::OK).await;
    assert_eq!(active["allowed"], true, "{active}");
}

/// The operator's path from the README: the JavaScript image policy and the Python pricing rule
/// uploaded into their slots, live on this replica when the upload answers and on the other
/// replica soon after, then removed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_and_python_plugins_swap_in_live() {
    let first = TestApp::spawn_with(Engine::Sqlite, patient).await;
    let second = first.replica_with(patient).await;
    let tenant = first.create_tenant("acme").await;
    let project = first.create_project(&tenant, "web").await;
    let app = |name: &str, image: &str| json!({"projectID": project, "name": name, "image": image});

    // Before: the built-in policy takes :latest.
    expect_json(first.post("/v1/apps", &app("before", "nginx:latest")).await, StatusCode::OK).await;
    let js = build_example("examples/js-deny-latest", "npm", "Node.js 18 or later with npm");
    let installed = expect_json(upload(&first, "image-policy", js).await, StatusCode::OK).await;
    assert_eq!(installed["source"], "uploaded");
    for server in [&first, &second] {
        let refused = eventually_refused(server, &app("after", "nginx:latest")).await;
        assert!(refused.contains("uses the tag latest"), "{refused}");
        let pinned = format!("pinned-{}", ulid::Ulid::generate().to_string().to_lowercase());
        expect_json(server.post("/v1/apps", &app(&pinned, "nginx:1.27")).await, StatusCode::OK).await;
    }

    // 3,000,000 MiB-hours at 0.00001: 30.00 flat; the Python tiers bill the 2,000,000 above the
    // first 1,000,000 at half the rate.
    let rates = json!({"cpu_milli": "0", "mem_mib": "0.00001",
                       "effective_from": (this_hour() - chrono::Duration::days(40)).to_rfc3339()});
    assert_eq!(
        first.put(&format!("/v1/tenants/{tenant}/rates"), &rates).await.status(),
        StatusCode::NO_CONTENT
    );
    let point =
        json!([{"ts": this_hour().to_rfc3339(), "tenant_id": tenant, "cpu_milli": 0, "mem_mib": 3_000_000}]);
    expect_json(first.post("/v1/usage/ingest", &point).await, StatusCode::OK).await;
    assert_eq!(subtotal(&first, &tenant).await, "30.00");
    let python = build_example("examples/py-tiered-pricing", "python3", "Python 3.10 or later with venv");
    expect_json(upload(&first, "pricing", python).await, StatusCode::OK).await;
    assert_eq!(subtotal(&first, &tenant).await, "20.00");
    let started = Instant::now();
    while subtotal(&second, &tenant).await != "20.00" {
        assert!(started.elapsed() < Duration::from_secs(120), "the replica still prices flat");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removed: both slots fall back to the built-ins.
    expect_json(first.delete("/v1/platform/plugins/image-policy").await, StatusCode::OK).await;
    expect_json(first.delete("/v1/platform/plugins/pricing").await, StatusCode::OK).await;
    expect_json(first.post("/v1/apps", &app("again", "nginx:latest")).await, StatusCode::OK).await;
    assert_eq!(subtotal(&first, &tenant).await, "30.00");
}

/// An upload that outlasts the request timeout answers 408 and installs nothing; its compile
/// goes on, so the same upload sent again is installed without compiling anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_the_request_timeout_installs_nothing_and_its_retry_is_quick() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| config.http.request_timeout_ms = 1_000).await;
    let js = build_example("examples/js-deny-latest", "npm", "Node.js 18 or later with npm");
    let component = retagged(&js, &ulid::Ulid::generate().to_string());
    let sha = kubeop_plugins::sha256_hex(&component);

    expect_error(
        upload(&app, "image-policy", component.clone()).await,
        StatusCode::REQUEST_TIMEOUT,
        "longer than",
    )
    .await;
    let slot = expect_json(app.get("/v1/platform/plugins").await, StatusCode::OK).await;
    let image_policy = slot.as_array().unwrap().iter().find(|s| s["slot"] == "image-policy").unwrap();
    assert_eq!(image_policy["source"], "builtin", "{image_policy}");
    assert_eq!(app.count_rows("plugins").await, 0);

    let started = Instant::now();
    let installed = loop {
        let response = upload(&app, "image-policy", component.clone()).await;
        if response.status() == StatusCode::OK {
            break expect_json(response, StatusCode::OK).await;
        }
        expect_error(response, StatusCode::REQUEST_TIMEOUT, "longer than").await;
        assert!(started.elapsed() < Duration::from_secs(300), "never installed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(installed["sha256"], sha.as_str());
    assert_eq!(installed["source"], "uploaded");
}

/// An upload, waiting as long as the server may take to compile it (see [`patient`]).
async fn upload(server: &TestApp, slot: &str, component: Vec<u8>) -> reqwest::Response {
    server
        .request(Method::PUT, &format!("/v1/platform/plugins/{slot}"))
        .header("content-type", "application/wasm")
        .timeout(Duration::from_secs(300))
        .body(component)
        .send()
        .await
        .expect("request sent")
}

/// Waits for `server` to refuse `body` (a replica swaps once it has compiled the upload).
async fn eventually_refused(server: &TestApp, body: &Value) -> String {
    let started = Instant::now();
    loop {
        let response = server.request(Method::POST, "/v1/apps").json(body).send().await.unwrap();
        if response.status() == StatusCode::BAD_REQUEST {
            return expect_error(response, StatusCode::BAD_REQUEST, "").await;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "still allowed: {}", response.status());
        // Allowed before the swap: remove it again so the name is free for the next try.
        if response.status() == StatusCode::OK {
            let created: Value = response.json().await.unwrap();
            server.delete(&format!("/v1/apps/{}", created["id"].as_str().unwrap())).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn subtotal(app: &TestApp, tenant: &str) -> String {
    let response = app.get(&format!("/v1/invoices/{tenant}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Money is written with its exact digits: read them as sent.
    let text = response.text().await.unwrap();
    let start = text.find("\"subtotal\":").unwrap_or_else(|| panic!("no subtotal in {text}")) + 11;
    text[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect()
}

fn this_hour() -> chrono::DateTime<Utc> {
    Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap()
}
