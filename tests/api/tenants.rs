//! `/v1/tenants`, as the seed's walkthrough uses it, plus paging, conflicts and cascades.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    seed_walkthrough_for_tenants,
    lists_are_newest_first_and_page_with_a_cursor,
    duplicate_names_conflict_and_write_nothing,
    unknown_and_malformed_ids_are_404,
    deleting_a_tenant_removes_its_projects_and_apps,
    a_rename_must_keep_every_namespace_within_63_characters,
    reads_see_this_replicas_writes_at_once_and_others_within_the_cache_ttl,
);

async fn seed_walkthrough_for_tenants(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = expect_json(app.post("/v1/tenants", &json!({"name": "acme"})).await, StatusCode::OK).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("t_"), "{id}");
    assert_eq!(created["name"], "acme");
    chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).unwrap();

    let fetched = expect_json(app.get(&format!("/v1/tenants/{id}")).await, StatusCode::OK).await;
    assert_eq!(fetched, created);
    let listed = expect_json(app.get("/v1/tenants").await, StatusCode::OK).await;
    assert_eq!(listed, json!([created]));

    let renamed = app.put("/v1/tenants", &json!({"ID": id, "Name": "acme-inc"})).await;
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);
    let fetched = expect_json(app.get(&format!("/v1/tenants/{id}")).await, StatusCode::OK).await;
    assert_eq!(fetched["name"], "acme-inc");
    // The lower-case spellings work too.
    let renamed = app.put("/v1/tenants", &json!({"id": id, "name": "acme-2"})).await;
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.delete(&format!("/v1/tenants/{id}")).await.status(), StatusCode::NO_CONTENT);
    expect_error(app.get(&format!("/v1/tenants/{id}")).await, StatusCode::NOT_FOUND, id).await;
    assert_eq!(expect_json(app.get("/v1/tenants").await, StatusCode::OK).await, json!([]));
}

async fn lists_are_newest_first_and_page_with_a_cursor(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.create_tenant(&format!("tenant-{i}")).await);
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut path = "/v1/tenants?limit=3".to_owned();
    loop {
        let response = app.get(&path).await;
        let next = response.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
        let page = expect_json(response, StatusCode::OK).await;
        let page = page.as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match next {
            Some(cursor) => path = format!("/v1/tenants?limit=3&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "every tenant once, newest first");
    // Exactly one full page: no cursor.
    let response = app.get("/v1/tenants?limit=7").await;
    assert!(response.headers().get("x-next-cursor").is_none());

    for bad in ["limit=0", "limit=1001", "limit=abc", "after=not-a-cursor", "after=dA"] {
        expect_error(app.get(&format!("/v1/tenants?{bad}")).await, StatusCode::BAD_REQUEST, "").await;
    }
    let full = expect_json(app.get("/v1/tenants?limit=1000").await, StatusCode::OK).await;
    assert_eq!(full.as_array().unwrap().len(), 7);
}

async fn duplicate_names_conflict_and_write_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first = app.create_tenant("acme").await;
    let other = app.create_tenant("globex").await;
    expect_error(app.post("/v1/tenants", &json!({"name": "acme"})).await, StatusCode::CONFLICT, "acme").await;
    assert_eq!(app.count_rows("tenants").await, 2);
    // Renaming onto a taken name conflicts too and changes nothing.
    let response = app.put("/v1/tenants", &json!({"ID": other, "Name": "acme"})).await;
    expect_error(response, StatusCode::CONFLICT, "acme").await;
    let other = expect_json(app.get(&format!("/v1/tenants/{other}")).await, StatusCode::OK).await;
    assert_eq!(other["name"], "globex");
    // Renaming to its own name is fine.
    let response = app.put("/v1/tenants", &json!({"ID": first, "Name": "acme"})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn unknown_and_malformed_ids_are_404(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    expect_error(app.get(&format!("/v1/tenants/{unknown}")).await, StatusCode::NOT_FOUND, unknown).await;
    expect_error(app.delete(&format!("/v1/tenants/{unknown}")).await, StatusCode::NOT_FOUND, unknown).await;
    let response = app.put("/v1/tenants", &json!({"ID": unknown, "Name": "x"})).await;
    expect_error(response, StatusCode::NOT_FOUND, unknown).await;
    expect_error(app.get("/v1/tenants/nope").await, StatusCode::NOT_FOUND, "nope").await;
    expect_error(app.get("/v1/tenants/p_01jd5x7k3q9m2n4p6r8s0t1v2w").await, StatusCode::NOT_FOUND, "").await;
    // A malformed id in a body is invalid input.
    let response = app.put("/v1/tenants", &json!({"ID": "acme", "Name": "x"})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "ID").await;
}

async fn deleting_a_tenant_removes_its_projects_and_apps(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let web = app.create_app(&project, "web", "web.acme.test").await;
    let keep_tenant = app.create_tenant("globex").await;
    let keep_project = app.create_project(&keep_tenant, "web").await;
    let keep_app = app.create_app(&keep_project, "web", "web.globex.test").await;

    assert_eq!(app.delete(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/projects/{project}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/v1/apps/{web}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.counts().await, [1, 1, 1]);
    assert_eq!(app.get(&format!("/v1/apps/{keep_app}")).await.status(), StatusCode::OK);
    // The freed host can be claimed again.
    app.create_app(&keep_project, "web2", "web.acme.test").await;
}

async fn a_rename_must_keep_every_namespace_within_63_characters(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    // kubeop-acme-<50 chars> = 7 + 4 + 1 + 50 = 62 characters.
    let long = "p".repeat(50);
    app.create_project(&tenant, &long).await;
    let response = app.put("/v1/tenants", &json!({"ID": tenant, "Name": "acme-x"})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "63").await;
    let unchanged = expect_json(app.get(&format!("/v1/tenants/{tenant}")).await, StatusCode::OK).await;
    assert_eq!(unchanged["name"], "acme");
    let response = app.put("/v1/tenants", &json!({"ID": tenant, "Name": "acmex"})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "kubeop-acmex-<50> is exactly 63");
}

async fn reads_see_this_replicas_writes_at_once_and_others_within_the_cache_ttl(engine: Engine) {
    let first = TestApp::spawn_with(engine, |config| config.db.read_cache_ttl_ms = 300).await;
    let second = first.replica().await;
    let tenant = first.create_tenant("acme").await;
    let project = first.create_project(&tenant, "web").await;
    // Both replicas now hold the tenant in their caches.
    assert_eq!(name_of(&first, &tenant).await, "acme");
    assert_eq!(name_of(&second, &tenant).await, "acme");

    // The replica that renames reads the new name at once.
    assert_eq!(
        first.put("/v1/tenants", &json!({"ID": tenant, "Name": "acme-inc"})).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(name_of(&first, &tenant).await, "acme-inc");
    // The other one within the TTL.
    let renamed = std::time::Instant::now();
    while name_of(&second, &tenant).await != "acme-inc" {
        assert!(renamed.elapsed() < std::time::Duration::from_millis(1000), "still the old name");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A delete is seen at once where it was made, cascades included.
    assert_eq!(first.get(&format!("/v1/projects/{project}")).await.status(), StatusCode::OK);
    assert_eq!(first.delete(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.get(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(first.get(&format!("/v1/projects/{project}")).await.status(), StatusCode::NOT_FOUND);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(second.get(&format!("/v1/tenants/{tenant}")).await.status(), StatusCode::NOT_FOUND);
}

async fn name_of(app: &TestApp, tenant: &str) -> String {
    let body = expect_json(app.get(&format!("/v1/tenants/{tenant}")).await, StatusCode::OK).await;
    body["name"].as_str().unwrap().to_owned()
}
