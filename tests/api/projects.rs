//! `/v1/projects`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};

both_engines!(
    seed_walkthrough_for_projects,
    the_tenant_key_takes_its_usual_spellings,
    a_project_needs_an_existing_tenant,
    names_must_form_a_namespace_that_fits,
    names_are_unique_within_a_tenant,
    namespaces_are_unique_across_tenants,
    lists_filter_by_tenant,
);

async fn seed_walkthrough_for_projects(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let created = app.post("/v1/projects", &json!({"tenantID": tenant, "name": "web"})).await;
    let created = expect_json(created, StatusCode::OK).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("p_"));
    assert_eq!(created["tenant_id"], tenant.as_str());
    assert_eq!(created["name"], "web");
    assert_eq!(created["namespace"], "kubeop-acme-web");

    let listed = expect_json(app.get(&format!("/v1/projects?tenantID={tenant}")).await, StatusCode::OK).await;
    assert_eq!(listed, json!([created]));
    assert_eq!(expect_json(app.get(&format!("/v1/projects/{id}")).await, StatusCode::OK).await, created);

    let patched = app.send_json(Method::PATCH, "/v1/projects", &json!({"ID": id, "Name": "web-main"})).await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let fetched = expect_json(app.get(&format!("/v1/projects/{id}")).await, StatusCode::OK).await;
    assert_eq!(fetched["name"], "web-main");
    assert_eq!(fetched["namespace"], "kubeop-acme-web", "a namespace cannot be renamed");
    let put = app.put("/v1/projects", &json!({"id": id, "name": "web-2"})).await;
    assert_eq!(put.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.delete(&format!("/v1/projects/{id}")).await.status(), StatusCode::NO_CONTENT);
    expect_error(app.get(&format!("/v1/projects/{id}")).await, StatusCode::NOT_FOUND, id).await;
    expect_error(app.delete(&format!("/v1/projects/{id}")).await, StatusCode::NOT_FOUND, id).await;
    let response = app.put("/v1/projects", &json!({"ID": id, "Name": "x"})).await;
    expect_error(response, StatusCode::NOT_FOUND, id).await;
}

async fn the_tenant_key_takes_its_usual_spellings(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    for (i, key) in ["tenantID", "tenantId", "tenant_id", "TenantID"].iter().enumerate() {
        let response = app.post("/v1/projects", &json!({ *key: tenant, "name": format!("p{i}") })).await;
        let body = expect_json(response, StatusCode::OK).await;
        assert_eq!(body["tenant_id"], tenant.as_str(), "{key}");
    }
    let listed =
        expect_json(app.get(&format!("/v1/projects?tenant_id={tenant}")).await, StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 4);
}

async fn a_project_needs_an_existing_tenant(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    let response = app.post("/v1/projects", &json!({"tenantID": unknown, "name": "web"})).await;
    expect_error(response, StatusCode::NOT_FOUND, unknown).await;
    let response = app.post("/v1/projects", &json!({"tenantID": "acme", "name": "web"})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "tenantID").await;
    let response = app.post("/v1/projects", &json!({"name": "web"})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "tenantID").await;
    assert_eq!(app.count_rows("projects").await, 0);
}

async fn names_must_form_a_namespace_that_fits(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    // kubeop-acme-<51> is 63 characters: the longest allowed.
    let fits = app.post("/v1/projects", &json!({"tenantID": tenant, "name": "p".repeat(51)})).await;
    let fits = expect_json(fits, StatusCode::OK).await;
    assert_eq!(fits["namespace"].as_str().unwrap().len(), 63);
    let response = app.post("/v1/projects", &json!({"tenantID": tenant, "name": "q".repeat(52)})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "64 characters").await;
    for bad in ["Web", "web_1", "-web", "web-", "", "w.b"] {
        let response = app.post("/v1/projects", &json!({"tenantID": tenant, "name": bad})).await;
        expect_error(response, StatusCode::BAD_REQUEST, "name").await;
    }
    let project = fits["id"].as_str().unwrap();
    let response = app.put("/v1/projects", &json!({"ID": project, "Name": "r".repeat(52)})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "63").await;
    assert_eq!(app.count_rows("projects").await, 1);
}

async fn names_are_unique_within_a_tenant(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let web = app.create_project(&acme, "web").await;
    let api = app.create_project(&acme, "api").await;
    let response = app.post("/v1/projects", &json!({"tenantID": acme, "name": "web"})).await;
    expect_error(response, StatusCode::CONFLICT, "web").await;
    app.create_project(&globex, "web").await;
    let response = app.put("/v1/projects", &json!({"ID": api, "Name": "web"})).await;
    expect_error(response, StatusCode::CONFLICT, "web").await;
    let api = expect_json(app.get(&format!("/v1/projects/{api}")).await, StatusCode::OK).await;
    assert_eq!(api["name"], "api");
    assert_eq!(app.count_rows("projects").await, 3);
    assert!(!web.is_empty());
}

async fn namespaces_are_unique_across_tenants(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let a_b = app.create_tenant("a-b").await;
    let a = app.create_tenant("a").await;
    app.create_project(&a_b, "c").await;
    // kubeop-a-b-c again, from another tenant and project.
    let response = app.post("/v1/projects", &json!({"tenantID": a, "name": "b-c"})).await;
    expect_error(response, StatusCode::CONFLICT, "kubeop-a-b-c").await;
    assert_eq!(app.count_rows("projects").await, 1);
}

async fn lists_filter_by_tenant(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let a1 = app.create_project(&acme, "one").await;
    let g1 = app.create_project(&globex, "one").await;
    let a2 = app.create_project(&acme, "two").await;
    let ids = |items: Vec<serde_json::Value>| {
        items.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(app.list_all(&format!("/v1/projects?tenantID={acme}")).await), [a2.clone(), a1.clone()]);
    assert_eq!(ids(app.list_all("/v1/projects").await), [a2, g1, a1]);
    expect_error(app.get("/v1/projects?tenantID=nope").await, StatusCode::BAD_REQUEST, "tenantID").await;
    let unknown = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    assert_eq!(
        expect_json(app.get(&format!("/v1/projects?tenantID={unknown}")).await, StatusCode::OK).await,
        json!([])
    );
}
