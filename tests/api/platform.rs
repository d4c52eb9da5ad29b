//! `/v1/platform/policy`: the seed's allowlist behaviour, validation, and one policy for every
//! replica.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    the_environment_allowlist_refuses_other_registries,
    a_stored_policy_wins_at_once_on_every_replica,
    invalid_policies_are_refused_naming_the_entry,
);

async fn project(app: &TestApp) -> String {
    let tenant = app.create_tenant("acme").await;
    app.create_project(&tenant, "web").await
}

fn app_body(project: &str, name: &str, image: &str) -> serde_json::Value {
    json!({"projectID": project, "name": name, "image": image})
}

async fn the_environment_allowlist_refuses_other_registries(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.policy.image_allowlist = vec!["docker.io".into(), "ghcr.io".into()];
        config.policy.quota_max_requests_cpu = "4".into();
    })
    .await;
    let project = project(&app).await;
    let policy = expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await;
    assert_eq!(policy["source"], "environment");
    assert_eq!(policy["imageAllowlist"], json!(["docker.io", "ghcr.io"]));
    assert_eq!(policy["quotaMax"], json!({"requestsCPU": "4"}));

    // The seed: a registry outside the allowlist is a 400, and nothing is written.
    let message = expect_error(
        app.post("/v1/apps", &app_body(&project, "evil", "evil.io/x:1")).await,
        StatusCode::BAD_REQUEST,
        "evil.io",
    )
    .await;
    assert!(message.contains("allowlist"), "{message}");
    assert_eq!(app.count_rows("apps").await, 0);
    // `nginx` is docker.io/library/nginx.
    expect_json(app.post("/v1/apps", &app_body(&project, "web", "nginx:1.25")).await, StatusCode::OK).await;
    expect_json(app.post("/v1/apps", &app_body(&project, "api", "ghcr.io/acme/api:2")).await, StatusCode::OK)
        .await;
    // An update to a refused image is refused and changes nothing.
    let apps = app.list_all(&format!("/v1/apps?projectID={project}")).await;
    let id = apps[0]["id"].as_str().unwrap();
    expect_error(
        app.put("/v1/apps", &json!({"ID": id, "Image": "quay.io/x:1"})).await,
        StatusCode::BAD_REQUEST,
        "quay.io",
    )
    .await;
    let unchanged = expect_json(app.get(&format!("/v1/apps/{id}")).await, StatusCode::OK).await;
    assert_eq!(unchanged["image"], apps[0]["image"]);
}

async fn a_stored_policy_wins_at_once_on_every_replica(engine: Engine) {
    let first =
        TestApp::spawn_with(engine, |config| config.policy.image_allowlist = vec!["docker.io".into()]).await;
    let second = first.replica().await;
    let project = project(&first).await;
    expect_error(
        second.post("/v1/apps", &app_body(&project, "a", "quay.io/x:1")).await,
        StatusCode::BAD_REQUEST,
        "quay.io",
    )
    .await;

    let policy = json!({
        "imageAllowlist": ["docker.io", "quay.io", "localhost:5000"],
        "egressBaseline": ["10.0.0.0/8", "172.16.0.0/12"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"}
    });
    assert_eq!(first.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    // The replica that stored it applies it to its next request; the other one follows
    // (PostgreSQL: a notification, milliseconds; SQLite: the sync, at most a second).
    expect_json(first.post("/v1/apps", &app_body(&project, "z", "quay.io/x:1")).await, StatusCode::OK).await;
    let stored_at = std::time::Instant::now();
    while second.get("/v1/platform/policy").await.json::<serde_json::Value>().await.unwrap()["source"]
        != "database"
    {
        assert!(stored_at.elapsed() < std::time::Duration::from_secs(2), "the other replica did not follow");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if engine == Engine::Postgres {
        assert!(stored_at.elapsed() < std::time::Duration::from_millis(500), "notified, not polled");
    }
    expect_json(second.post("/v1/apps", &app_body(&project, "a", "quay.io/x:1")).await, StatusCode::OK).await;
    expect_json(
        second.post("/v1/apps", &app_body(&project, "b", "localhost:5000/team/b")).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        second.post("/v1/apps", &app_body(&project, "c", "localhost:5001/team/c")).await,
        StatusCode::BAD_REQUEST,
        "localhost:5001",
    )
    .await;

    let stored = expect_json(second.get("/v1/platform/policy").await, StatusCode::OK).await;
    assert_eq!(stored["source"], "database");
    assert_eq!(stored["imageAllowlist"], policy["imageAllowlist"]);
    assert_eq!(stored["egressBaseline"], policy["egressBaseline"]);
    assert_eq!(stored["quotaMax"], policy["quotaMax"]);
    chrono::DateTime::parse_from_rfc3339(stored["updatedAt"].as_str().unwrap()).unwrap();

    // GET's answer can be sent back as is; an empty allowlist allows every registry.
    let mut round_trip = stored.clone();
    round_trip["imageAllowlist"] = json!([]);
    assert_eq!(second.put("/v1/platform/policy", &round_trip).await.status(), StatusCode::NO_CONTENT);
    expect_json(second.post("/v1/apps", &app_body(&project, "d", "evil.io/x:1")).await, StatusCode::OK).await;
}

async fn invalid_policies_are_refused_naming_the_entry(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let valid = json!({"imageAllowlist": ["docker.io"], "egressBaseline": ["10.0.0.0/8"], "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"}});
    assert_eq!(app.put("/v1/platform/policy", &valid).await.status(), StatusCode::NO_CONTENT);
    let before = expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await;
    let cases = [
        (json!({"imageAllowlist": ["docker.io", "evil io"]}), "imageAllowlist: entry 1"),
        (json!({"imageAllowlist": ["docker.io/library"]}), "imageAllowlist: entry 0"),
        (json!({"imageAllowlist": ["registry:99999"]}), "port"),
        (json!({"egressBaseline": ["10.0.0.0/8", "10.0.0.1/8"]}), "egressBaseline: entry 1"),
        (json!({"egressBaseline": ["10.0.0.0"]}), "egressBaseline: entry 0"),
        (json!({"quotaMax": {"requestsCPU": "four"}}), "quotaMax.requestsCPU"),
        (json!({"quotaMax": {"requestsMemory": "8GB"}}), "quotaMax.requestsMemory"),
        (json!({"quotaMax": {"requestsMemory": "0"}}), "quotaMax.requestsMemory"),
        (json!({"imageAllowList": ["docker.io"]}), "imageAllowList"),
        (json!({"imageAllowlist": "docker.io"}), "imageAllowlist"),
    ];
    for (body, needle) in cases {
        expect_error(app.put("/v1/platform/policy", &body).await, StatusCode::BAD_REQUEST, needle).await;
    }
    assert_eq!(expect_json(app.get("/v1/platform/policy").await, StatusCode::OK).await, before);
}
