//! `/v1/apps`.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    seed_walkthrough_for_apps,
    images_are_parsed_as_references,
    hosts_must_be_dns_names_and_unique,
    names_are_unique_within_a_project,
    an_app_needs_an_existing_project,
    updates_change_only_what_they_name,
    lists_filter_by_project,
);

async fn setup(app: &TestApp) -> String {
    let tenant = app.create_tenant("acme").await;
    app.create_project(&tenant, "web").await
}

async fn seed_walkthrough_for_apps(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    let body = json!({"projectID": project, "name": "web", "image": "docker.io/library/nginx:1.25", "host": "web.local"});
    let created = expect_json(app.post("/v1/apps", &body).await, StatusCode::OK).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("a_"));
    assert_eq!(created["project_id"], project.as_str());
    assert_eq!(created["name"], "web");
    assert_eq!(created["image"], "docker.io/library/nginx:1.25");
    assert_eq!(created["host"], "web.local");

    let listed = expect_json(app.get(&format!("/v1/apps?projectID={project}")).await, StatusCode::OK).await;
    assert_eq!(listed, json!([created]));
    assert_eq!(expect_json(app.get(&format!("/v1/apps/{id}")).await, StatusCode::OK).await, created);

    let update =
        json!({"ID": id, "Name": "web", "Image": "docker.io/library/nginx:1.26", "Host": "web.local"});
    assert_eq!(app.put("/v1/apps", &update).await.status(), StatusCode::NO_CONTENT);
    let fetched = expect_json(app.get(&format!("/v1/apps/{id}")).await, StatusCode::OK).await;
    assert_eq!(fetched["image"], "docker.io/library/nginx:1.26");

    assert_eq!(app.delete(&format!("/v1/apps/{id}")).await.status(), StatusCode::NO_CONTENT);
    expect_error(app.get(&format!("/v1/apps/{id}")).await, StatusCode::NOT_FOUND, id).await;
    expect_error(app.delete(&format!("/v1/apps/{id}")).await, StatusCode::NOT_FOUND, id).await;
}

async fn images_are_parsed_as_references(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    for (i, image) in [
        "nginx",
        "library/nginx:1.25",
        "localhost:5000/team/api:v2",
        "ghcr.io/acme/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"projectID": project, "name": format!("ok{i}"), "image": image});
        let created = expect_json(app.post("/v1/apps", &body).await, StatusCode::OK).await;
        assert_eq!(created["image"], *image, "kept as written");
        assert_eq!(created["host"], serde_json::Value::Null);
    }
    for (i, image) in ["", "NGINX", "nginx:", "a:b:c", "web app", "ghcr.io/x@sha256:short"].iter().enumerate()
    {
        let body = json!({"projectID": project, "name": format!("bad{i}"), "image": image});
        expect_error(app.post("/v1/apps", &body).await, StatusCode::BAD_REQUEST, "image").await;
    }
    let body = json!({"projectID": project, "name": "noimage"});
    expect_error(app.post("/v1/apps", &body).await, StatusCode::BAD_REQUEST, "image").await;
    assert_eq!(app.count_rows("apps").await, 4);
}

async fn hosts_must_be_dns_names_and_unique(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    let tenant2 = app.create_tenant("globex").await;
    let other_project = app.create_project(&tenant2, "web").await;
    for (i, host) in ["web local", "-web.local", "web..local", "*.local", "http://web.local", "a_b.local"]
        .iter()
        .enumerate()
    {
        let body = json!({"projectID": project, "name": format!("h{i}"), "image": "nginx", "host": host});
        expect_error(app.post("/v1/apps", &body).await, StatusCode::BAD_REQUEST, "host").await;
    }
    let first = app.create_app(&project, "web", "Shop.Example.com").await;
    let first = expect_json(app.get(&format!("/v1/apps/{first}")).await, StatusCode::OK).await;
    assert_eq!(first["host"], "shop.example.com", "hosts are stored in lower case");
    // No other app, in any tenant, may claim the same host.
    let body =
        json!({"projectID": other_project, "name": "shop", "image": "nginx", "host": "shop.example.com"});
    expect_error(app.post("/v1/apps", &body).await, StatusCode::CONFLICT, "shop.example.com").await;
    let second = app.create_app(&other_project, "api", "api.example.com").await;
    let response = app.put("/v1/apps", &json!({"ID": second, "Host": "SHOP.example.com"})).await;
    expect_error(response, StatusCode::CONFLICT, "shop.example.com").await;
    assert_eq!(app.count_rows("apps").await, 2);
}

async fn names_are_unique_within_a_project(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    let tenant = app.create_tenant("globex").await;
    let other = app.create_project(&tenant, "web").await;
    app.create_app(&project, "web", "a.test").await;
    let body = json!({"projectID": project, "name": "web", "image": "nginx", "host": "b.test"});
    expect_error(app.post("/v1/apps", &body).await, StatusCode::CONFLICT, "web").await;
    app.create_app(&other, "web", "b.test").await;
    let api = app.create_app(&project, "api", "c.test").await;
    expect_error(app.put("/v1/apps", &json!({"ID": api, "Name": "web"})).await, StatusCode::CONFLICT, "web")
        .await;
    assert_eq!(app.count_rows("apps").await, 3);
}

async fn an_app_needs_an_existing_project(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let unknown = "p_01jd5x7k3q9m2n4p6r8s0t1v2w";
    let body = json!({"projectID": unknown, "name": "web", "image": "nginx"});
    expect_error(app.post("/v1/apps", &body).await, StatusCode::NOT_FOUND, unknown).await;
    let body = json!({"projectID": "web", "name": "web", "image": "nginx"});
    expect_error(app.post("/v1/apps", &body).await, StatusCode::BAD_REQUEST, "projectID").await;
    expect_error(app.get(&format!("/v1/apps?projectID={unknown}")).await, StatusCode::NOT_FOUND, unknown)
        .await;
    assert_eq!(app.count_rows("apps").await, 0);
}

async fn updates_change_only_what_they_name(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    let id = app.create_app(&project, "web", "web.test").await;
    assert_eq!(
        app.put("/v1/apps", &json!({"id": id, "image": "ghcr.io/acme/web:2"})).await.status(),
        StatusCode::NO_CONTENT
    );
    let fetched = expect_json(app.get(&format!("/v1/apps/{id}")).await, StatusCode::OK).await;
    assert_eq!(
        (fetched["name"].as_str(), fetched["image"].as_str(), fetched["host"].as_str()),
        (Some("web"), Some("ghcr.io/acme/web:2"), Some("web.test"))
    );
    expect_error(app.put("/v1/apps", &json!({"ID": id})).await, StatusCode::BAD_REQUEST, "nothing to update")
        .await;
    expect_error(
        app.put("/v1/apps", &json!({"ID": id, "Image": "Bad Image"})).await,
        StatusCode::BAD_REQUEST,
        "image",
    )
    .await;
    let unknown = "a_01jd5x7k3q9m2n4p6r8s0t1v2w";
    expect_error(
        app.put("/v1/apps", &json!({"ID": unknown, "Name": "x"})).await,
        StatusCode::NOT_FOUND,
        unknown,
    )
    .await;
    let unchanged = expect_json(app.get(&format!("/v1/apps/{id}")).await, StatusCode::OK).await;
    assert_eq!(unchanged, fetched);
}

async fn lists_filter_by_project(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = setup(&app).await;
    let tenant = app.create_tenant("globex").await;
    let other = app.create_project(&tenant, "api").await;
    let a = app.create_app(&project, "a", "a.test").await;
    let b = app.create_app(&other, "b", "b.test").await;
    let c = app.create_app(&project, "c", "c.test").await;
    let ids = |items: Vec<serde_json::Value>| {
        items.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(app.list_all(&format!("/v1/apps?projectID={project}")).await), [c.clone(), a.clone()]);
    assert_eq!(ids(app.list_all("/v1/apps").await), [c, b, a]);
}
