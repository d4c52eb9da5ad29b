//! The attacks of the security review, each reproduced and answered: held connections, usage
//! overflow, bodies read before the caller is checked, namespace squatting and loose input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use kubeop_api::auth::Caller;
use kubeop_core::{ProjectId, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    hourly_usage_cannot_be_overflowed_by_a_tenant,
    snapshots_sum_past_64_bits_without_failing,
    a_tenant_cannot_squat_another_tenants_namespaces,
    a_tenant_cannot_take_a_name_whose_namespaces_another_holds,
    loose_input_is_refused,
);

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads whatever the server sends until it closes the connection or `within` passes.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_mid_headers_is_closed_within_the_header_timeout() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| config.http.header_timeout_ms = 500).await;
    let addr = host_port(&app);
    let started = Instant::now();
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
        read_until_closed(&mut stream, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(closed, "the server closed the connection");
    assert!(answer.is_empty(), "no answer to a request that never finished: {answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "not before the timeout: {waited:?}");
    assert!(waited < Duration::from_secs(5), "soon after the timeout: {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_idle_connection_is_closed_and_a_slow_body_gets_408() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        config.http.header_timeout_ms = 500;
        config.http.idle_timeout_ms = 1500;
        config.http.request_timeout_ms = 1000;
    })
    .await;
    let addr = host_port(&app);
    tokio::task::spawn_blocking(move || {
        // Connected and said nothing: the header timeout.
        let mut silent = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        assert!(read_until_closed(&mut silent, Duration::from_secs(10)).1);
        assert!(started.elapsed() < Duration::from_millis(1400), "{:?}", started.elapsed());

        // Answered, then idle on keep-alive: kept past the header timeout, closed at the idle one.
        let mut idle = TcpStream::connect(&addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 512];
        let n = idle.read(&mut first).unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        let answered = Instant::now();
        assert!(read_until_closed(&mut idle, Duration::from_secs(10)).1);
        let kept = answered.elapsed();
        assert!(kept >= Duration::from_millis(1000), "kept past the header timeout: {kept:?}");
        assert!(kept < Duration::from_secs(5), "closed at the idle timeout: {kept:?}");

        // A body that never finishes: 408 at the request timeout.
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.write_all(
            b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
        )
        .unwrap();
        let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("longer than 1000 ms"), "{answer}");
    })
    .await
    .unwrap();
    assert_eq!(app.count_rows("tenants").await, 0, "the cut-off request wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_new_connections_are_refused_then_served_again() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        config.http.header_timeout_ms = 1000;
        config.http.max_connections = 20;
    })
    .await;
    let addr = host_port(&app);
    tokio::task::spawn_blocking(move || {
        // The attack: every slot held by a request that never finishes its headers.
        let held: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n").unwrap();
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        // A fresh connection is answered at once, and not left waiting.
        let started = Instant::now();
        let mut fresh = TcpStream::connect(&addr).unwrap();
        fresh.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (answer, closed) = read_until_closed(&mut fresh, Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("too many connections"), "{answer}");
        assert!(closed && started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
        // Once the held ones time out, /healthz answers again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut probe = TcpStream::connect(&addr).unwrap();
            probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let (answer, _) = read_until_closed(&mut probe, Duration::from_secs(5));
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "still refused: {answer}");
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(held);
    })
    .await
    .unwrap();
}

/// Sends the head of a request whose body is `length` bytes and then nothing: the answer must
/// come without the body ever being read.
fn answer_without_body(addr: &str, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    read_until_closed(&mut stream, Duration::from_secs(5)).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_refused_before_their_body_is_read() {
    let app = TestApp::spawn_with_auth(Engine::Sqlite).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let project_token =
        app.mint(&Caller::Project { subject: "p".into(), project: ProjectId::parse(&project).unwrap() });
    let tenant_token =
        app.mint(&Caller::Tenant { subject: "t".into(), tenant: TenantId::parse(&tenant).unwrap() });
    let addr = host_port(&app);
    tokio::task::spawn_blocking(move || {
        let ingest = format!(
            "POST /v1/usage/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {project_token}\r\n\
             Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n["
        );
        let answer = answer_without_body(&addr, &ingest);
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("project tokens may not send usage"), "{answer}");
        let upload = format!(
            "PUT /v1/platform/plugins/image-policy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant_token}\r\n\
             Content-Type: application/wasm\r\nContent-Length: 16000000\r\n\r\n\0asm"
        );
        let answer = answer_without_body(&addr, &upload);
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    })
    .await
    .unwrap();
    // An ingest body over its limit (256 bytes a point) is refused by size.
    let oversized = "[".to_owned() + &" ".repeat(3 * 1024 * 1024) + "]";
    let response = app
        .request(Method::POST, "/v1/usage/ingest")
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "256 bytes").await;
}

fn this_hour() -> chrono::DateTime<Utc> {
    Utc::now().with_minute(0).unwrap().with_second(0).unwrap().with_nanosecond(0).unwrap()
}

async fn hourly_usage_cannot_be_overflowed_by_a_tenant(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let tenant_token =
        app.mint(&Caller::Tenant { subject: "t".into(), tenant: TenantId::parse(&acme).unwrap() });
    let ts = this_hour().to_rfc3339();
    // The attack: a tenant sends the largest 64-bit amount for itself.
    let attack = json!([{"ts": ts, "tenant_id": acme, "cpu_milli": i64::MAX, "mem_mib": 1}]);
    let response =
        app.request_as(&tenant_token, Method::POST, "/v1/usage/ingest").json(&attack).send().await.unwrap();
    let body = expect_json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["points"][0]["index"], 0);
    let error = body["points"][0]["error"].as_str().unwrap();
    assert!(error.contains("cpu_milli") && error.contains("1000000000"), "{error}");
    // The largest a point may carry is accepted, and the operator's mixed batch still lands.
    let largest =
        json!([{"ts": ts, "tenant_id": acme, "cpu_milli": 1_000_000_000, "mem_mib": 1_000_000_000}]);
    let response =
        app.request_as(&tenant_token, Method::POST, "/v1/usage/ingest").json(&largest).send().await.unwrap();
    expect_json(response, StatusCode::OK).await;
    let mixed = json!([
        {"ts": ts, "tenant_id": globex, "cpu_milli": 100, "mem_mib": 200},
        {"ts": ts, "tenant_id": acme, "cpu_milli": 5, "mem_mib": 5},
    ]);
    expect_json(app.post("/v1/usage/ingest", &mixed).await, StatusCode::OK).await;

    // An hour already near 64 bits (as years of points would make it): the batch that would
    // overflow it names the tenant and its points, and writes nothing.
    let hour = this_hour().timestamp();
    app.execute(&format!(
        "UPDATE usage_hourly SET cpu_milli = {} WHERE tenant_id = '{acme}' AND hour = {hour}",
        i64::MAX - 10
    ))
    .await;
    let overflowing = json!([
        {"ts": ts, "tenant_id": globex, "cpu_milli": 1, "mem_mib": 1},
        {"ts": ts, "tenant_id": acme, "cpu_milli": 6, "mem_mib": 1},
        {"ts": ts, "tenant_id": acme, "cpu_milli": 6, "mem_mib": 1},
    ]);
    let body = expect_json(app.post("/v1/usage/ingest", &overflowing).await, StatusCode::BAD_REQUEST).await;
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&acme) && error.contains("nothing was written"), "{error}");
    let indices: Vec<u64> =
        body["points"].as_array().unwrap().iter().map(|p| p["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, [1, 2]);
    assert!(body["points"][0]["error"].as_str().unwrap().contains(&acme));
    let snapshot =
        expect_json(app.get(&format!("/v1/usage/snapshot?tenantID={globex}")).await, StatusCode::OK).await;
    assert_eq!(snapshot["totals"]["cpu_milli"], 100, "the refused batch wrote nothing");
}

async fn snapshots_sum_past_64_bits_without_failing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let hour = this_hour().timestamp();
    // Two hours each holding nearly the most an hour can: their sum needs more than 64 bits.
    for h in [hour, hour - 3600] {
        app.execute(&format!(
            "INSERT INTO usage_hourly (tenant_id, hour, cpu_milli, mem_mib) VALUES ('{acme}', {h}, {}, 7)",
            i64::MAX
        ))
        .await;
    }
    let response = app.get("/v1/usage/snapshot").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let expected = (i128::from(i64::MAX) * 2).to_string();
    assert!(text.contains(&format!("\"cpu_milli\":{expected}")), "exact: {text}");
    assert!(text.contains("\"mem_mib\":14"), "{text}");
    // The invoice of such a month is refused or priced, never a 500.
    let invoice = app.get(&format!("/v1/invoices/{acme}")).await;
    assert_ne!(invoice.status(), StatusCode::INTERNAL_SERVER_ERROR, "{:?}", invoice.text().await);
}

async fn a_tenant_cannot_squat_another_tenants_namespaces(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let acme_corp = app.create_tenant("acme-corp").await;
    // acme's project `corp-web` would take `kubeop-acme-corp-web`, which reads as acme-corp's.
    let response = app.post("/v1/projects", &json!({"tenantID": acme, "name": "corp-web"})).await;
    let message = expect_error(response, StatusCode::CONFLICT, "kubeop-acme-corp-web").await;
    assert!(message.contains("`acme-corp`"), "{message}");
    assert_eq!(app.count_rows("projects").await, 0);
    // acme-corp gets its own project `web`, and acme keeps every name that is not a squat.
    let web = app.create_project(&acme_corp, "web").await;
    let project = expect_json(app.get(&format!("/v1/projects/{web}")).await, StatusCode::OK).await;
    assert_eq!(project["namespace"], "kubeop-acme-corp-web");
    app.create_project(&acme, "corp").await;
    app.create_project(&acme, "corpweb").await;
}

async fn a_tenant_cannot_take_a_name_whose_namespaces_another_holds(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    app.create_project(&acme, "corp-web").await;
    // The other order: `kubeop-acme-corp-web` exists, so no tenant may be called acme-corp.
    let response = app.post("/v1/tenants", &json!({"name": "acme-corp"})).await;
    let message = expect_error(response, StatusCode::CONFLICT, "kubeop-acme-corp-web").await;
    assert!(message.contains("acme-corp"), "{message}");
    assert_eq!(app.count_rows("tenants").await, 1);
    // Nor may a tenant be renamed to it.
    let globex = app.create_tenant("globex").await;
    let response = app.put("/v1/tenants", &json!({"ID": globex, "Name": "acme-corp"})).await;
    expect_error(response, StatusCode::CONFLICT, "kubeop-acme-corp-web").await;
    let kept = expect_json(app.get(&format!("/v1/tenants/{globex}")).await, StatusCode::OK).await;
    assert_eq!(kept["name"], "globex");
    // A renamed tenant keeps its namespaces; its old name is not free for another tenant.
    assert_eq!(
        app.put("/v1/tenants", &json!({"ID": acme, "Name": "acme-inc"})).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = app.post("/v1/tenants", &json!({"name": "acme"})).await;
    expect_error(response, StatusCode::CONFLICT, "kubeop-acme-corp-web").await;
}

async fn loose_input_is_refused(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    // A JSON array is no object, even when serde could read a struct from it.
    let response = app.send_json(Method::POST, "/v1/tenants", &json!(["acme"])).await;
    expect_error(response, StatusCode::BAD_REQUEST, "must be a JSON object").await;
    assert_eq!(app.count_rows("tenants").await, 0);
    // Nor is a nested one (found by the OpenAPI fuzzer): the policy is unchanged.
    let policy = json!({"imageAllowlist": ["docker.io"], "quotaMax": [null, null]});
    let response = app.put("/v1/platform/policy", &policy).await;
    expect_error(response, StatusCode::BAD_REQUEST, "quotaMax").await;
    let current = expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await;
    assert_eq!(current["source"], "environment", "{current}");
    // A NUL in a stored string: 400 naming the field, on both engines, and nothing stored.
    let tenant = app.create_tenant("acme").await;
    let rates = json!({"cpu_milli": "0.1", "mem_mib": "0.1", "tier": "gold\u{0}x"});
    let response = app.put(&format!("/v1/tenants/{tenant}/rates"), &rates).await;
    expect_error(response, StatusCode::BAD_REQUEST, "tier").await;
    assert_eq!(app.count_rows("tenant_rates").await, 0);
    // The scheme is case-insensitive; `alg: none` is named.
    let token = app.token.clone().unwrap();
    let response = app
        .client
        .get(app.url("/v1/tenants"))
        .header("authorization", format!("BEARER {token}"))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9.";
    let response = app.request_as(unsigned, Method::GET, "/v1/tenants").send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "`none` is not allowed").await;
}
