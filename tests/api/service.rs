//! Service endpoints: health, readiness, version, metrics, OpenAPI, request ids, fallbacks.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    the_served_document_carries_the_configured_limits,
    healthz_and_readyz_answer_ok,
    readyz_is_503_without_a_kms_key,
    readyz_is_503_when_the_database_is_gone,
    version_names_the_build,
    metrics_count_requests_by_route_template,
    request_ids_are_echoed_or_made,
    unknown_routes_and_methods_answer_json,
);

/// A client generated from `/openapi.json` must refuse what this server refuses, whatever its
/// configuration: the limits a configuration sets are the document's bounds.
async fn the_served_document_carries_the_configured_limits(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.billing.max_batch_points = 50;
        config.billing.max_point_cpu_milli = 4000;
        config.billing.max_point_mem_mib = 8192;
        config.auth.max_token_ttl_minutes = 60;
    })
    .await;
    let doc = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Batch"]["maxItems"], 50);
    assert_eq!(schemas["Point"]["properties"]["cpu_milli"]["maximum"], 4000);
    assert_eq!(schemas["Point"]["properties"]["mem_mib"]["maximum"], 8192);
    assert_eq!(schemas["MintProjectToken"]["properties"]["TTLMinutes"]["maximum"], 60);
    // And the server refuses past them, as the document says.
    let tenant = app.create_tenant("acme").await;
    let point =
        json!({"ts": chrono::Utc::now().to_rfc3339(), "tenant_id": tenant, "cpu_milli": 4001, "mem_mib": 1});
    let response = app.post("/v1/usage/ingest", &json!([point])).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn healthz_and_readyz_answer_ok(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    // Probes carry no token.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(expect_json(health, StatusCode::OK).await, json!({"status": "ok"}));
    let ready = expect_json(app.client.get(app.url("/readyz")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(ready, json!({"status": "ready", "checks": {"database": "ok", "kms": "ok"}}));
}

async fn readyz_is_503_without_a_kms_key(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.strict = true;
        config.kms.master_key = None;
    })
    .await;
    let body = expect_json(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["checks"]["database"], "ok");
    assert!(body["error"].as_str().unwrap().contains("KUBEOP_KMS_MASTER_KEY"), "{body}");
}

async fn readyz_is_503_when_the_database_is_gone(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.state.store.close().await;
    let body = expect_json(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["checks"]["kms"], "ok");
    assert!(body["error"].as_str().unwrap().contains("database"), "{body}");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn version_names_the_build(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let body = expect_json(app.get("/version").await, StatusCode::OK).await;
    assert_eq!(body["service"], "manager");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // The library is not stamped; the binary is (the CLI tests check its commit and date).
    assert_eq!(body["gitCommit"], "unknown");
    assert_eq!(body["buildDate"], "unknown");
}

async fn metrics_count_requests_by_route_template(engine: Engine) {
    // Every read goes to the database, so the store metrics count each one.
    let app = TestApp::spawn_with(engine, |config| config.db.read_cache_ttl_ms = 0).await;
    let tenant = app.create_tenant("acme").await;
    for _ in 0..3 {
        assert_eq!(app.get(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::OK);
    }
    app.get("/v1/tenants/t_01jd5x7k3q9m2n4p6r8s0t1v2w").await;
    let response = app.get("/metrics").await;
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"kubeop_http_requests_total{method="GET",route="/v1/tenants/{id}",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kubeop_http_requests_total{method="GET",route="/v1/tenants/{id}",status="404"} 1"#)
    );
    assert!(text.contains(r#"kubeop_http_requests_total{method="POST",route="/v1/tenants",status="200"} 1"#));
    assert!(
        text.contains(
            r#"kubeop_http_request_duration_seconds_count{method="GET",route="/v1/tenants/{id}"} 4"#
        )
    );
    assert!(text.contains(r#"kubeop_db_operation_duration_seconds_count{operation="tenants.get"} 4"#));
    assert!(!text.contains(&tenant), "raw paths must not become labels");
    assert!(text.contains("process_resident_memory_bytes"));
}

async fn request_ids_are_echoed_or_made(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mine = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(mine.headers()["x-request-id"], "abc-123");
    let made = app.get("/healthz").await;
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 26, "a ULID: {id}");
    assert_ne!(app.get("/healthz").await.headers()["x-request-id"].to_str().unwrap(), id);
}

async fn unknown_routes_and_methods_answer_json(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    expect_error(app.get("/v2/nothing").await, StatusCode::NOT_FOUND, "/v2/nothing").await;
    let response = app.request(reqwest::Method::DELETE, "/v1/tenants").send().await.unwrap();
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "DELETE").await;
}

#[tokio::test]
async fn openapi_describes_every_route_with_bearer_security() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let doc = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let expected: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/version", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/tenants", &["get", "post", "put"]),
        ("/v1/tenants/{id}", &["get", "delete"]),
        ("/v1/projects", &["get", "post", "put", "patch"]),
        ("/v1/projects/{id}", &["get", "delete"]),
        ("/v1/apps", &["get", "post", "put"]),
        ("/v1/apps/{id}", &["get", "delete"]),
        ("/v1/jwt/project", &["post"]),
        ("/v1/platform/policy", &["get", "put"]),
        ("/v1/platform/plugins", &["get"]),
        ("/v1/platform/plugins/{slot}", &["put", "delete"]),
        ("/v1/platform/plugins/{slot}/candidates", &["post"]),
        ("/v1/admission/review", &["post"]),
        ("/v1/usage/ingest", &["post"]),
        ("/v1/usage/snapshot", &["get"]),
        ("/v1/tenants/{id}/rates", &["get", "put"]),
        ("/v1/invoices/{tenantID}", &["get"]),
        ("/v1/clusters", &["post", "get"]),
        ("/v1/clusters/{id}", &["get", "delete"]),
        ("/v1/clusters/{id}/status", &["get"]),
        ("/v1/kubeconfigs/project/{id}", &["get"]),
        ("/v1/kubeconfigs/{namespace}", &["get"]),
        ("/v1/platform/bootstrap", &["post"]),
        ("/v1/platform/status", &["get"]),
        ("/v1/platform/autoscale", &["post"]),
        ("/v1/cronjobs", &["post", "get"]),
        ("/v1/cronjobs/{projectID}/{name}", &["get", "delete"]),
        ("/v1/cronjobs/{projectID}/{name}/run", &["post"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in expected {
        for method in *methods {
            let operation = &paths[*path][*method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(operation["responses"].is_object(), "{method} {path} has no responses");
        }
    }
    assert_eq!(paths.len(), expected.len(), "undocumented or unexpected paths: {:?}", paths.keys());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"][0]["bearer"], json!([]));
    // Service endpoints need no token; API endpoints document their errors and bodies.
    assert_eq!(paths["/healthz"]["get"]["security"], json!([{}]));
    let create = &paths["/v1/tenants"]["post"];
    assert!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string());
    for status in ["400", "401", "403", "404", "409", "413", "415"] {
        assert!(create["responses"][status].is_object(), "POST /v1/tenants lacks {status}");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ErrorBody",
        "Tenant",
        "Project",
        "App",
        "CreateTenant",
        "UpdateApp",
        "MintProjectToken",
        "PolicyBody",
        "PluginStatus",
    ] {
        assert!(schemas.contains_key(schema), "no schema {schema}");
    }
    // The validation the server applies is in the schemas, so a generated client applies it too.
    assert_eq!(schemas["UpdateTenant"]["properties"]["ID"]["$ref"], "#/components/schemas/TenantId");
    assert_eq!(schemas["TenantId"]["pattern"], "^t_[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$");
    assert_eq!(schemas["CreateTenant"]["properties"]["name"]["$ref"], "#/components/schemas/Name");
    assert_eq!(schemas["Name"]["maxLength"], 63);
    assert_eq!(schemas["MintProjectToken"]["properties"]["TTLMinutes"]["minimum"], 1);
    let ingest = &paths["/v1/usage/ingest"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(ingest["$ref"], "#/components/schemas/Batch");
    assert_eq!(schemas["Batch"]["maxItems"], 10_000);
    let upload = &paths["/v1/platform/plugins/{slot}"]["put"]["requestBody"]["content"];
    assert_eq!(upload["application/octet-stream"]["schema"]["$ref"], "#/components/schemas/Component");
    assert_eq!(schemas["Component"]["format"], "binary");
}
