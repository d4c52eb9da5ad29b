//! `/v1/cronjobs`: stored, reconciled into the project's namespace as batch/v1 CronJobs, run on
//! demand as Jobs, and refused with nothing written when any field is wrong.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json};
use crate::kube::{cluster, eventually, register, tenant_on, validate_strictly};
use kubeop_api::auth::Caller;
use kubeop_core::ProjectId;

fn full(project: &str) -> Value {
    json!({
        "projectID": project,
        "name": "nightly-report",
        "schedule": "0 3 * * 1-5",
        "image": "docker.io/library/busybox:1.36",
        "command": ["sh", "-c"],
        "args": ["echo report"],
        "env": {"MODE": "nightly", "LEVEL": "2"},
        "suspend": false,
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 5,
        "failedJobsHistoryLimit": 2,
        "startingDeadlineSeconds": 300
    })
}

both_engines!(cronjobs_reach_the_cluster_run_and_go);

async fn cronjobs_reach_the_cluster_run_and_go(engine: Engine) {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn(engine).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let tenant = tenant_on(&app, &cluster).await;
    let project = app.create_project(&tenant, "web").await;

    let created = expect_json(app.post("/v1/cronjobs", &full(&project)).await, StatusCode::OK).await;
    assert!(created["id"].as_str().unwrap().starts_with("cj_"));
    assert_eq!(created["projectID"], project.as_str());
    assert_eq!(created["schedule"], "0 3 * * 1-5");
    assert_eq!(created["env"], json!({"LEVEL": "2", "MODE": "nightly"}));
    assert_eq!(created["concurrencyPolicy"], "Forbid");
    expect_error(app.post("/v1/cronjobs", &full(&project)).await, StatusCode::CONFLICT, "already exists")
        .await;
    // Kubernetes' defaults where fields are left out.
    let minimal = json!({"projectID": project, "name": "hourly", "schedule": "@hourly", "image": "busybox"});
    let minimal = expect_json(app.post("/v1/cronjobs", &minimal).await, StatusCode::OK).await;
    assert_eq!(
        (
            &minimal["successfulJobsHistoryLimit"],
            &minimal["failedJobsHistoryLimit"],
            &minimal["concurrencyPolicy"]
        ),
        (&json!(3), &json!(1), &json!("Allow"))
    );

    let namespace = "kubeop-acme-web";
    let object = || fake.object("batch/v1", "cronjobs", Some(namespace), "nightly-report");
    eventually("the CronJob reaches the project's namespace", || object().is_some()).await;
    let cronjob = object().unwrap();
    let spec = &cronjob["spec"];
    assert_eq!(spec["schedule"], "0 3 * * 1-5");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(
        (&spec["successfulJobsHistoryLimit"], &spec["failedJobsHistoryLimit"]),
        (&json!(5), &json!(2))
    );
    assert_eq!(spec["startingDeadlineSeconds"], 300);
    assert_eq!(spec["suspend"], false);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "docker.io/library/busybox:1.36");
    assert_eq!(container["command"], json!(["sh", "-c"]));
    assert_eq!(container["args"], json!(["echo report"]));
    assert_eq!(
        container["env"],
        json!([{"name": "LEVEL", "value": "2"}, {"name": "MODE", "value": "nightly"}])
    );
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(container["resources"]["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(cronjob["metadata"]["labels"]["paas.kubeop.io/project-id"], project.as_str());

    let listed = app.list_all(&format!("/v1/cronjobs?projectID={project}")).await;
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hourly", "nightly-report"], "newest first");
    let path = format!("/v1/cronjobs/{project}/nightly-report");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = expect_json(app.get(&path).await, StatusCode::OK).await;
        assert_eq!(got["status"]["namespace"], namespace);
        if got["status"]["state"] == "ready" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Run now: a Job from the template, owned by the CronJob.
    let run = expect_json(app.post(&format!("{path}/run"), &json!({})).await, StatusCode::OK).await;
    let job_name = run["job"].as_str().unwrap();
    assert!(job_name.starts_with("nightly-report-") && job_name.len() <= 63, "{run}");
    assert_eq!(run["namespace"], namespace);
    let job = fake.object("batch/v1", "jobs", Some(namespace), job_name).expect("the Job exists");
    assert_eq!(job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!((&owner["kind"], &owner["name"]), (&json!("CronJob"), &json!("nightly-report")));
    assert_eq!(owner["uid"], object().unwrap()["metadata"]["uid"]);
    assert_eq!(job["spec"]["template"], spec["jobTemplate"]["spec"]["template"]);
    let second = expect_json(app.post(&format!("{path}/run"), &json!({})).await, StatusCode::OK).await;
    assert_ne!(second["job"], run["job"], "each run is a Job of its own");
    validate_strictly(&[object().unwrap(), job]).await;

    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    expect_error(app.get(&path).await, StatusCode::NOT_FOUND, "nightly-report").await;
    expect_error(app.delete(&path).await, StatusCode::NOT_FOUND, "nightly-report").await;
    expect_error(app.post(&format!("{path}/run"), &json!({})).await, StatusCode::NOT_FOUND, "nightly-report")
        .await;
    eventually("the CronJob leaves the cluster", || object().is_none()).await;
    assert!(fake.object("batch/v1", "cronjobs", Some(namespace), "hourly").is_some(), "the other stays");
}

both_engines!(each_bad_field_is_refused_and_nothing_is_written);

async fn each_bad_field_is_refused_and_nothing_is_written(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    assert_eq!(
        app.put("/v1/platform/policy", &json!({"imageAllowlist": ["docker.io"]})).await.status(),
        StatusCode::NO_CONTENT
    );
    let with = |field: &str, value: Value| {
        let mut body = full(&project);
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = full(&project);
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (with("schedule", json!("61 * * * *")), StatusCode::BAD_REQUEST, "schedule"),
        (with("schedule", json!("@fortnightly")), StatusCode::BAD_REQUEST, "schedule"),
        (with("schedule", json!("* * * *")), StatusCode::BAD_REQUEST, "schedule"),
        (with("schedule", json!("TZ=UTC 0 * * * *")), StatusCode::BAD_REQUEST, "timeZone"),
        (with("schedule", json!(5)), StatusCode::BAD_REQUEST, "schedule"),
        (with("name", json!("a".repeat(53))), StatusCode::BAD_REQUEST, "52"),
        (with("name", json!("Bad_Name")), StatusCode::BAD_REQUEST, "name"),
        (with("image", json!("ghcr.io/acme/job:1")), StatusCode::BAD_REQUEST, "not allowed"),
        (with("image", json!("")), StatusCode::BAD_REQUEST, "image"),
        (with("concurrencyPolicy", json!("Sometimes")), StatusCode::BAD_REQUEST, "concurrencyPolicy"),
        (
            with("successfulJobsHistoryLimit", json!(-1)),
            StatusCode::BAD_REQUEST,
            "successfulJobsHistoryLimit",
        ),
        (with("failedJobsHistoryLimit", json!(101)), StatusCode::BAD_REQUEST, "failedJobsHistoryLimit"),
        (with("startingDeadlineSeconds", json!(-5)), StatusCode::BAD_REQUEST, "startingDeadlineSeconds"),
        (with("startingDeadlineSeconds", json!(1e300)), StatusCode::BAD_REQUEST, "startingDeadlineSeconds"),
        (with("env", json!({"1BAD": "x"})), StatusCode::BAD_REQUEST, "env"),
        (with("env", json!({"OK": 1})), StatusCode::BAD_REQUEST, "env"),
        (with("env", json!({"BIG": "x".repeat(40_000)})), StatusCode::BAD_REQUEST, "env"),
        (with("command", json!(vec!["x"; 65])), StatusCode::BAD_REQUEST, "command"),
        (with("args", json!(["ok", "y".repeat(5000)])), StatusCode::BAD_REQUEST, "args[1]"),
        (with("suspend", json!("no")), StatusCode::BAD_REQUEST, "suspend"),
        (with("surprise", json!(true)), StatusCode::BAD_REQUEST, "surprise"),
        (with("projectID", json!("nope")), StatusCode::BAD_REQUEST, "projectID"),
        (with("projectID", json!("p_01jd5x7k3q9m2n4p6r8s0t1v2w")), StatusCode::NOT_FOUND, "not found"),
        (without("schedule"), StatusCode::BAD_REQUEST, "schedule"),
        (without("image"), StatusCode::BAD_REQUEST, "image"),
    ];
    for (body, status, needle) in cases {
        expect_error(app.post("/v1/cronjobs", &body).await, status, needle).await;
    }
    assert_eq!(app.count_rows("cronjobs").await, 0, "nothing was written");
    assert_eq!(app.count_rows("kube_outbox").await, 0);

    // Stored without a cluster; running one needs it.
    expect_json(app.post("/v1/cronjobs", &full(&project)).await, StatusCode::OK).await;
    let got =
        expect_json(app.get(&format!("/v1/cronjobs/{project}/nightly-report")).await, StatusCode::OK).await;
    assert!(got.get("status").is_none(), "no cluster, no status: {got}");
    expect_error(
        app.post(&format!("/v1/cronjobs/{project}/nightly-report/run"), &json!({})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no cluster",
    )
    .await;
    expect_error(app.get("/v1/cronjobs/nope/nightly-report").await, StatusCode::NOT_FOUND, "nope").await;
    expect_error(app.get(&format!("/v1/cronjobs/{project}/missing")).await, StatusCode::NOT_FOUND, "missing")
        .await;
}

both_engines!(a_project_token_reaches_its_own_project_only);

async fn a_project_token_reaches_its_own_project_only(engine: Engine) {
    let app = TestApp::spawn_with_auth(engine).await;
    let tenant = app.create_tenant("acme").await;
    let own = app.create_project(&tenant, "web").await;
    let other = app.create_project(&tenant, "api").await;
    let token = app.mint(&Caller::Project { subject: "ci".into(), project: ProjectId::parse(&own).unwrap() });
    let send = |method: Method, path: String, body: Option<Value>| {
        let request = app.request_as(&token, method, &path);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };

    // Its own project: everything.
    expect_json(send(Method::POST, "/v1/cronjobs".into(), Some(full(&own))).await, StatusCode::OK).await;
    expect_json(send(Method::GET, format!("/v1/cronjobs?projectID={own}"), None).await, StatusCode::OK).await;
    expect_json(send(Method::GET, format!("/v1/cronjobs/{own}/nightly-report"), None).await, StatusCode::OK)
        .await;
    // Another project of the same tenant: nothing, and nothing written.
    expect_json(app.post("/v1/cronjobs", &full(&other)).await, StatusCode::OK).await;
    expect_error(
        send(Method::POST, "/v1/cronjobs".into(), Some(full(&other))).await,
        StatusCode::FORBIDDEN,
        "",
    )
    .await;
    expect_error(send(Method::GET, "/v1/cronjobs".into(), None).await, StatusCode::FORBIDDEN, "projectID")
        .await;
    expect_error(
        send(Method::GET, format!("/v1/cronjobs?projectID={other}"), None).await,
        StatusCode::FORBIDDEN,
        "",
    )
    .await;
    for method in [Method::GET, Method::DELETE] {
        expect_error(
            send(method, format!("/v1/cronjobs/{other}/nightly-report"), None).await,
            StatusCode::FORBIDDEN,
            "",
        )
        .await;
    }
    expect_error(
        send(Method::POST, format!("/v1/cronjobs/{other}/nightly-report/run"), Some(json!({}))).await,
        StatusCode::FORBIDDEN,
        "",
    )
    .await;
    assert_eq!(app.count_rows("cronjobs").await, 2, "the other project's CronJob is still there");
    assert_eq!(
        send(Method::DELETE, format!("/v1/cronjobs/{own}/nightly-report"), None).await.status(),
        StatusCode::NO_CONTENT
    );
}
