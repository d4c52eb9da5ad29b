//! Malformed bodies on every endpoint that takes one: a 4xx JSON error, and nothing written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error};

both_engines!(every_write_refuses_bad_bodies_and_writes_nothing, oversized_bodies_get_413);

/// Each endpoint with a valid body, so each case below changes one thing about it.
async fn endpoints(app: &TestApp) -> Vec<(Method, &'static str, Value)> {
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let web = app.create_app(&project, "web", "web.test").await;
    vec![
        (Method::POST, "/v1/tenants", json!({"name": "globex"})),
        (Method::PUT, "/v1/tenants", json!({"ID": tenant, "Name": "acme-inc"})),
        (Method::POST, "/v1/projects", json!({"tenantID": tenant, "name": "api"})),
        (Method::PUT, "/v1/projects", json!({"ID": project, "Name": "web-2"})),
        (Method::PATCH, "/v1/projects", json!({"ID": project, "Name": "web-2"})),
        (
            Method::POST,
            "/v1/apps",
            json!({"projectID": project, "name": "api", "image": "nginx", "host": "api.test"}),
        ),
        (Method::PUT, "/v1/apps", json!({"ID": web, "Name": "web-2"})),
        (Method::POST, "/v1/jwt/project", json!({"ProjectID": project, "TTLMinutes": 60})),
    ]
}

async fn snapshot(app: &TestApp) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (app.list_all("/v1/tenants").await, app.list_all("/v1/projects").await, app.list_all("/v1/apps").await)
}

async fn every_write_refuses_bad_bodies_and_writes_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let endpoints = endpoints(&app).await;
    let before = app.counts().await;
    let state = snapshot(&app).await;

    for (method, path, valid) in &endpoints {
        let send_raw = |body: &'static str| {
            app.request(method.clone(), path).header("content-type", "application/json").body(body).send()
        };

        expect_error(send_raw("{,}").await.unwrap(), StatusCode::BAD_REQUEST, "malformed JSON").await;
        expect_error(send_raw("").await.unwrap(), StatusCode::BAD_REQUEST, "").await;
        // Only an object is a body: serde would read a struct from an array (`["acme"]`).
        expect_error(send_raw("[1, 2]").await.unwrap(), StatusCode::BAD_REQUEST, "must be a JSON object")
            .await;
        expect_error(send_raw("[\"acme\"]").await.unwrap(), StatusCode::BAD_REQUEST, "must be a JSON object")
            .await;
        expect_error(send_raw("null").await.unwrap(), StatusCode::BAD_REQUEST, "must be a JSON object").await;

        let mut unknown = valid.clone();
        unknown["colour"] = json!("blue");
        let message = expect_error(
            app.send_json(method.clone(), path, &unknown).await,
            StatusCode::BAD_REQUEST,
            "unknown field",
        )
        .await;
        assert!(message.contains("colour"), "{method} {path}: {message}");

        // Every field with the wrong type.
        for key in valid.as_object().unwrap().keys() {
            let mut wrong = valid.clone();
            wrong[key] = if valid[key].is_string() { json!(12) } else { json!("twelve") };
            let message = expect_error(
                app.send_json(method.clone(), path, &wrong).await,
                StatusCode::BAD_REQUEST,
                "invalid",
            )
            .await;
            assert!(message.contains(key.as_str()), "{method} {path}: {message} should name {key}");
        }

        let response = app.request(method.clone(), path).body(valid.to_string()).send().await.unwrap();
        expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json").await;
    }
    assert_eq!(app.counts().await, before);
    assert_eq!(snapshot(&app).await, state, "nothing changed");
}

async fn oversized_bodies_get_413(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let endpoints = endpoints(&app).await;
    let before = app.counts().await;
    let padding = "x".repeat(1024 * 1024 + 1);
    for (method, path, valid) in &endpoints {
        let mut big = valid.clone();
        big["padding"] = json!(padding);
        expect_error(
            app.send_json(method.clone(), path, &big).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        )
        .await;
    }
    // Just under the limit is parsed (and then refused for its unknown field).
    let body = json!({"name": "x", "p": "y".repeat(1024 * 1024 - 100)});
    expect_error(app.post("/v1/tenants", &body).await, StatusCode::BAD_REQUEST, "unknown field").await;
    assert_eq!(app.counts().await, before);
}
