//! Authentication and authorization through HTTP: every endpoint against missing, forged,
//! expired and unsigned tokens, and against each role acting on its own and on others' things.

use std::collections::BTreeMap;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kubeop_api::auth::Caller;
use kubeop_core::{ProjectId, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, SIGNING_KEY, TestApp, expect_error, expect_json};

both_engines!(every_endpoint_by_every_caller, minted_project_tokens_work_for_their_project_only);

/// Resources of the tenant the "own" tokens belong to, and of another tenant.
struct World {
    tenant: String,
    project: String,
    app_id: String,
    other_tenant: String,
    other_project: String,
}

async fn world(app: &TestApp) -> World {
    let tenant = app.create_tenant(&format!("own-{}", short_id())).await;
    let project = app.create_project(&tenant, "web").await;
    let app_id = app.create_app(&project, "web", &format!("web-{}.test", short_id())).await;
    let other_tenant = app.create_tenant(&format!("other-{}", short_id())).await;
    let other_project = app.create_project(&other_tenant, "web").await;
    let cronjob = json!({"projectID": project, "name": "nightly", "schedule": "@daily", "image": "busybox"});
    expect_json(app.post("/v1/cronjobs", &cronjob).await, StatusCode::OK).await;
    World { tenant, project, app_id, other_tenant, other_project }
}

fn short_id() -> String {
    ulid::Ulid::generate().to_string()[18..].to_lowercase()
}

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>) -> Case {
    Case { method, path: path.into(), body }
}

/// Every API endpoint, aimed at the "own" tenant's resources.
fn endpoints(w: &World) -> Vec<(&'static str, Case)> {
    let unique = short_id();
    vec![
        ("create tenant", case(Method::POST, "/v1/tenants", Some(json!({"name": format!("new-{unique}")})))),
        ("list tenants", case(Method::GET, "/v1/tenants", None)),
        ("get tenant", case(Method::GET, format!("/v1/tenants/{}", w.tenant), None)),
        (
            "update tenant",
            case(
                Method::PUT,
                "/v1/tenants",
                Some(json!({"ID": w.tenant, "Name": format!("renamed-{unique}")})),
            ),
        ),
        ("delete tenant", case(Method::DELETE, format!("/v1/tenants/{}", w.tenant), None)),
        (
            "create project",
            case(Method::POST, "/v1/projects", Some(json!({"tenantID": w.tenant, "name": "api"}))),
        ),
        ("list projects of tenant", case(Method::GET, format!("/v1/projects?tenantID={}", w.tenant), None)),
        ("list all projects", case(Method::GET, "/v1/projects", None)),
        ("get project", case(Method::GET, format!("/v1/projects/{}", w.project), None)),
        ("put project", case(Method::PUT, "/v1/projects", Some(json!({"ID": w.project, "Name": "web-2"})))),
        (
            "patch project",
            case(Method::PATCH, "/v1/projects", Some(json!({"ID": w.project, "Name": "web-3"}))),
        ),
        ("delete project", case(Method::DELETE, format!("/v1/projects/{}", w.project), None)),
        (
            "create app",
            case(
                Method::POST,
                "/v1/apps",
                Some(json!({"projectID": w.project, "name": "api", "image": "nginx"})),
            ),
        ),
        ("list apps of project", case(Method::GET, format!("/v1/apps?projectID={}", w.project), None)),
        ("list all apps", case(Method::GET, "/v1/apps", None)),
        ("get app", case(Method::GET, format!("/v1/apps/{}", w.app_id), None)),
        ("update app", case(Method::PUT, "/v1/apps", Some(json!({"ID": w.app_id, "Image": "nginx:2"})))),
        ("delete app", case(Method::DELETE, format!("/v1/apps/{}", w.app_id), None)),
        (
            "mint project token",
            case(Method::POST, "/v1/jwt/project", Some(json!({"ProjectID": w.project, "TTLMinutes": 5}))),
        ),
        (
            "create cronjob",
            case(
                Method::POST,
                "/v1/cronjobs",
                Some(
                    json!({"projectID": w.project, "name": "hourly", "schedule": "@hourly", "image": "busybox"}),
                ),
            ),
        ),
        (
            "list cronjobs of project",
            case(Method::GET, format!("/v1/cronjobs?projectID={}", w.project), None),
        ),
        ("list all cronjobs", case(Method::GET, "/v1/cronjobs", None)),
        ("get cronjob", case(Method::GET, format!("/v1/cronjobs/{}/nightly", w.project), None)),
        ("run cronjob", case(Method::POST, format!("/v1/cronjobs/{}/nightly/run", w.project), None)),
        ("delete cronjob", case(Method::DELETE, format!("/v1/cronjobs/{}/nightly", w.project), None)),
        ("bootstrap", case(Method::POST, "/v1/platform/bootstrap", Some(json!({})))),
        ("platform status", case(Method::GET, "/v1/platform/status", None)),
        ("autoscale", case(Method::POST, "/v1/platform/autoscale", Some(json!({"Enabled": false})))),
        (
            "review admission",
            case(Method::POST, "/v1/admission/review", Some(crate::admission::pod_review("default"))),
        ),
        // Not a component: refused as such, after the caller is checked.
        (
            "upload candidate",
            case(Method::POST, "/v1/platform/plugins/admission/candidates", Some(json!({}))),
        ),
    ]
}

/// Expected status per caller: admin, tenant own, tenant other, project own, project other.
fn expected() -> BTreeMap<&'static str, [u16; 5]> {
    let admin_only = |ok: u16| [ok, 403, 403, 403, 403];
    let owners = |ok: u16| [ok, ok, 403, ok, 403];
    BTreeMap::from([
        ("create tenant", admin_only(200)),
        ("list tenants", admin_only(200)),
        ("get tenant", [200, 200, 403, 403, 403]),
        ("update tenant", admin_only(204)),
        ("delete tenant", admin_only(204)),
        ("create project", [200, 200, 403, 403, 403]),
        ("list projects of tenant", [200, 200, 403, 403, 403]),
        ("list all projects", admin_only(200)),
        ("get project", owners(200)),
        ("put project", admin_only(204)),
        ("patch project", admin_only(204)),
        ("delete project", admin_only(204)),
        ("create app", owners(200)),
        ("list apps of project", owners(200)),
        ("list all apps", admin_only(200)),
        ("get app", owners(200)),
        ("update app", admin_only(204)),
        ("delete app", admin_only(204)),
        ("mint project token", admin_only(200)),
        ("get policy", admin_only(200)),
        ("put policy", admin_only(204)),
        ("list plugins", admin_only(200)),
        ("upload plugin", admin_only(400)),
        ("reset plugin", admin_only(200)),
        ("review admission", admin_only(200)),
        ("upload candidate", admin_only(400)),
        ("ingest usage", [200, 200, 403, 403, 403]),
        ("usage snapshot", admin_only(200)),
        ("get rates", [200, 200, 403, 403, 403]),
        ("put rates", admin_only(204)),
        ("get invoice", [200, 200, 403, 403, 403]),
        ("create cronjob", owners(200)),
        ("list cronjobs of project", owners(200)),
        ("list all cronjobs", admin_only(200)),
        ("get cronjob", owners(200)),
        // No cluster in this test: the callers allowed get as far as the cluster's 503.
        ("run cronjob", owners(503)),
        ("delete cronjob", owners(204)),
        ("bootstrap", admin_only(503)),
        ("platform status", admin_only(503)),
        ("autoscale", admin_only(503)),
    ])
}

fn forged_tokens(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let admin = Caller::Admin { subject: "x".into() };
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, key: &[u8], alg: Algorithm| {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
    };
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"role": "admin", "sub": "x", "exp": now + 600}))
    );
    vec![
        ("no token", None),
        (
            "bad signature",
            Some(sign(
                json!({"role": "admin", "sub": "x", "exp": now + 600}),
                b"another-key-another-key-another!!",
                Algorithm::HS256,
            )),
        ),
        (
            "expired",
            Some(sign(
                json!({"role": "admin", "sub": "x", "iat": now - 7200, "exp": now - 3600}),
                &SIGNING_KEY,
                Algorithm::HS256,
            )),
        ),
        ("alg none", Some(unsigned)),
        (
            "HS512",
            Some(sign(
                json!({"role": "admin", "sub": "x", "exp": now + 600}),
                &SIGNING_KEY,
                Algorithm::HS512,
            )),
        ),
        ("no exp", Some(sign(json!({"role": "admin", "sub": "x"}), &SIGNING_KEY, Algorithm::HS256))),
        ("garbage", Some("not.a.jwt".into())),
        (
            "tenant role without scope",
            Some(sign(
                json!({"role": "tenant", "sub": "x", "exp": now + 600}),
                &SIGNING_KEY,
                Algorithm::HS256,
            )),
        ),
    ]
    .into_iter()
    .chain(std::iter::once(("valid admin (control)", Some(app.mint(&admin)))))
    .collect()
}

async fn send(app: &TestApp, case: &Case, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.request(case.method.clone(), app.url(&case.path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &case.body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn every_endpoint_by_every_caller(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let expected = expected();
    let mut failures = Vec::new();

    // Tokens that are not acceptable get 401 everywhere, before anything else is looked at.
    let w = world(&app).await;
    for (name, case) in endpoints(&w) {
        for (label, token) in forged_tokens(&app) {
            if label.starts_with("valid") {
                continue;
            }
            let response = send(&app, &case, token.as_deref()).await;
            if response.status() != StatusCode::UNAUTHORIZED {
                failures.push(format!("{name} with {label}: {}", response.status()));
            } else {
                let body: Value = response.json().await.unwrap();
                assert!(body["error"].is_string());
            }
        }
    }
    // Nothing was written by the refused requests.
    assert_eq!(app.counts().await, [2, 2, 1]);

    let labels = ["admin", "tenant own", "tenant other", "project own", "project other"];
    for index in 0..endpoints(&w).len() {
        for (who, label) in labels.iter().enumerate() {
            // A fresh world for each call, so deletes and renames do not disturb the next one.
            let w = world(&app).await;
            let callers = [
                Caller::Admin { subject: "ops".into() },
                Caller::Tenant { subject: "t".into(), tenant: TenantId::parse(&w.tenant).unwrap() },
                Caller::Tenant { subject: "t".into(), tenant: TenantId::parse(&w.other_tenant).unwrap() },
                Caller::Project { subject: "p".into(), project: ProjectId::parse(&w.project).unwrap() },
                Caller::Project { subject: "p".into(), project: ProjectId::parse(&w.other_project).unwrap() },
            ];
            let (name, case) = endpoints(&w).swap_remove(index);
            let before = app.counts().await;
            let response = send(&app, &case, Some(&app.mint(&callers[who]))).await;
            let want = expected[name][who];
            let got = response.status().as_u16();
            if got != want {
                failures.push(format!(
                    "{name} as {label}: got {got}, want {want}: {}",
                    response.text().await.unwrap()
                ));
            } else if got == 403 {
                let body: Value = response.json().await.unwrap();
                assert!(body["error"].is_string());
                assert_eq!(app.counts().await, before, "{name} as {label}: refused but wrote");
            }
        }
    }

    // Service endpoints need no token, and ignore a bad one.
    for path in ["/healthz", "/readyz", "/version", "/metrics", "/openapi.json"] {
        for (label, token) in forged_tokens(&app) {
            let response = send(&app, &case(Method::GET, path, None), token.as_deref()).await;
            if response.status() != StatusCode::OK {
                failures.push(format!("{path} with {label}: {}", response.status()));
            }
        }
    }
    assert!(failures.is_empty(), "authorization matrix mismatches:\n{}", failures.join("\n"));
}

async fn minted_project_tokens_work_for_their_project_only(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let w = world(&app).await;
    let minted = app.post("/v1/jwt/project", &json!({"ProjectID": w.project, "TTLMinutes": 60})).await;
    let minted = expect_json(minted, StatusCode::OK).await;
    let token = minted["token"].as_str().unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(minted["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires.timestamp() - chrono::Utc::now().timestamp()) / 60;
    assert!((58..=60).contains(&minutes), "{minutes}");

    let with = |path: String| app.client.get(app.url(&path)).bearer_auth(token).send();
    assert_eq!(with(format!("/v1/projects/{}", w.project)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(with(format!("/v1/apps?projectID={}", w.project)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        with(format!("/v1/projects/{}", w.other_project)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(with("/v1/tenants".into()).await.unwrap().status(), StatusCode::FORBIDDEN);

    for ttl in [json!(0), json!(-5), json!(10_081)] {
        let response = app.post("/v1/jwt/project", &json!({"ProjectID": w.project, "TTLMinutes": ttl})).await;
        expect_error(response, StatusCode::BAD_REQUEST, "TTLMinutes").await;
    }
    let unknown = "p_01jd5x7k3q9m2n4p6r8s0t1v2w";
    let response = app.post("/v1/jwt/project", &json!({"ProjectID": unknown, "TTLMinutes": 5})).await;
    expect_error(response, StatusCode::NOT_FOUND, unknown).await;
    // The seed's spelling and the lower-case ones.
    let response = app.post("/v1/jwt/project", &json!({"projectID": w.project, "ttlMinutes": 5})).await;
    assert_eq!(response.status(), StatusCode::OK);
}
