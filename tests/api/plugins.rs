//! The plugin slots: swapping components without a restart (API, replicas, restarts), refusing
//! bad ones, and containing hostile ones.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_error, expect_json, guest};

both_engines!(
    the_sandbox_grants_nothing_behind_wasi,
    an_uploaded_plugin_replaces_the_builtin_until_deleted,
    bad_uploads_are_refused_and_the_active_plugin_stays,
    every_replica_runs_an_upload_within_two_seconds,
    uploads_survive_a_restart,
    a_plugin_directory_is_followed_as_files_change,
    hostile_plugins_fail_only_their_own_call,
);

async fn project(app: &TestApp) -> String {
    let tenant = app.create_tenant("acme").await;
    app.create_project(&tenant, "web").await
}

fn app_body(project: &str, name: &str, image: &str) -> Value {
    json!({"projectID": project, "name": name, "image": image})
}

async fn slot(app: &TestApp, name: &str) -> Value {
    let all = expect_json(app.get("/v1/platform/plugins").await, StatusCode::OK).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no slot {name}: {all}"))
}

async fn an_uploaded_plugin_replaces_the_builtin_until_deleted(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = project(&app).await;
    let slots = expect_json(app.get("/v1/platform/plugins").await, StatusCode::OK).await;
    let names: Vec<&str> = slots.as_array().unwrap().iter().map(|s| s["slot"].as_str().unwrap()).collect();
    assert_eq!(names, ["image-policy", "pricing", "admission"]);
    for slot in slots.as_array().unwrap() {
        assert_eq!(slot["source"], "builtin");
        assert_eq!(slot["sha256"].as_str().unwrap().len(), 64);
    }
    let builtin = slot(&app, "image-policy").await;
    expect_json(app.post("/v1/apps", &app_body(&project, "latest", "nginx:latest")).await, StatusCode::OK)
        .await;

    let component = guest("deny_latest.wasm");
    let installed =
        expect_json(app.upload_plugin("image-policy", component.clone()).await, StatusCode::OK).await;
    assert_eq!(installed["source"], "uploaded");
    assert_eq!(installed["size"], component.len());
    assert_ne!(installed["sha256"], builtin["sha256"]);
    // The new rules apply to the next request: no restart.
    let message = expect_error(
        app.post("/v1/apps", &app_body(&project, "again", "nginx:latest")).await,
        StatusCode::BAD_REQUEST,
        "latest",
    )
    .await;
    assert!(message.contains("nginx:latest"), "{message}");
    expect_error(
        app.post("/v1/apps", &app_body(&project, "untagged", "nginx")).await,
        StatusCode::BAD_REQUEST,
        "tag",
    )
    .await;
    expect_json(app.post("/v1/apps", &app_body(&project, "pinned", "nginx:1.25")).await, StatusCode::OK)
        .await;
    let status = slot(&app, "image-policy").await;
    assert_eq!(status["calls"], 3);
    assert_eq!(status["failures"], 0);
    assert!(
        status["p50_us"].as_u64().unwrap() > 0
            && status["p99_us"].as_u64().unwrap() >= status["p50_us"].as_u64().unwrap()
    );

    let reset = app.delete("/v1/platform/plugins/image-policy").await;
    let reset = expect_json(reset, StatusCode::OK).await;
    assert_eq!(reset["source"], "builtin");
    assert_eq!(reset["sha256"], builtin["sha256"]);
    expect_json(
        app.post("/v1/apps", &app_body(&project, "latest-again", "nginx:latest")).await,
        StatusCode::OK,
    )
    .await;
    expect_error(app.delete("/v1/platform/plugins/nope").await, StatusCode::NOT_FOUND, "nope").await;
}

async fn bad_uploads_are_refused_and_the_active_plugin_stays(engine: Engine) {
    // A limit for one slot only: the others keep plugins.max_upload_bytes (64 MiB).
    let app = TestApp::spawn_with(engine, |config| {
        config.plugins.image_policy.max_upload_bytes = Some(16 * 1024 * 1024);
    })
    .await;
    let project = project(&app).await;
    let installed =
        expect_json(app.upload_plugin("image-policy", guest("deny_latest.wasm")).await, StatusCode::OK).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text", b"hello, I am not wasm".to_vec(), "not a WebAssembly binary"),
        ("a core module", b"\0asm\x01\0\0\0".to_vec(), "core WebAssembly module"),
        ("a broken component", b"\0asm\x0d\0\x01\0garbage".to_vec(), "not a valid component"),
        ("the wrong world", guest("pricing.wasm"), "does not implement the image-policy world"),
        ("a self-check that traps", guest("always_trap.wasm"), "self-check failed"),
        // Beyond kubeop's interfaces and WASI 0.2: refused when it loads, the import named.
        ("an unknown import", guest("unknown_import.wasm"), "kubeop-test:unknown/vault"),
        ("nothing", Vec::new(), "component's bytes"),
    ];
    for (what, bytes, needle) in cases {
        let response = app.upload_plugin("image-policy", bytes).await;
        let message = expect_error(response, StatusCode::BAD_REQUEST, needle).await;
        assert!(message.starts_with("plugin refused") || what == "nothing", "{what}: {message}");
        let active = slot(&app, "image-policy").await;
        assert_eq!(active["sha256"], installed["sha256"], "{what} replaced the active plugin");
    }
    expect_error(app.upload_plugin("billing", guest("pricing.wasm")).await, StatusCode::NOT_FOUND, "billing")
        .await;
    // Over the image-policy slot's max_upload_bytes (16 MiB); the pricing slot reads it whole.
    let too_big = app.upload_plugin("image-policy", vec![0; 16 * 1024 * 1024 + 1]).await;
    expect_error(too_big, StatusCode::PAYLOAD_TOO_LARGE, "the image-policy slot's max_upload_bytes").await;
    let read = app.upload_plugin("pricing", vec![0; 16 * 1024 * 1024 + 1]).await;
    expect_error(read, StatusCode::BAD_REQUEST, "not a WebAssembly binary").await;
    // Still the uploaded policy.
    expect_error(
        app.post("/v1/apps", &app_body(&project, "l", "nginx:latest")).await,
        StatusCode::BAD_REQUEST,
        "latest",
    )
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"kubeop_plugin_loads_total{outcome="loaded",slot="image-policy"} 1"#),
        "{metrics}"
    );
}

async fn every_replica_runs_an_upload_within_two_seconds(engine: Engine) {
    let first = TestApp::spawn(engine).await;
    let second = first.replica().await;
    let project = project(&first).await;
    let installed =
        expect_json(first.upload_plugin("image-policy", guest("deny_latest.wasm")).await, StatusCode::OK)
            .await;
    let uploaded = Instant::now();
    loop {
        let status = slot(&second, "image-policy").await;
        if status["sha256"] == installed["sha256"] {
            assert_eq!(status["source"], "uploaded");
            break;
        }
        assert!(uploaded.elapsed() < Duration::from_secs(2), "the replica still runs {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_error(
        second.post("/v1/apps", &app_body(&project, "l", "nginx:latest")).await,
        StatusCode::BAD_REQUEST,
        "latest",
    )
    .await;

    // A delete on the replica sends both back to the built-in.
    expect_json(second.delete("/v1/platform/plugins/image-policy").await, StatusCode::OK).await;
    let deleted = Instant::now();
    while slot(&first, "image-policy").await["source"] != "builtin" {
        assert!(deleted.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn uploads_survive_a_restart(engine: Engine) {
    let first = TestApp::spawn(engine).await;
    let installed =
        expect_json(first.upload_plugin("image-policy", guest("deny_latest.wasm")).await, StatusCode::OK)
            .await;
    // Compiled once: the cache holds it for the next start.
    let sha = installed["sha256"].as_str().unwrap();
    let cache = first.data_dir().join("plugin-cache");
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.iter().any(|name| name.starts_with(sha) && name.ends_with(".cwasm")), "{entries:?}");
    // A new server on the same database loads it before it answers anything.
    let restarted = first.replica().await;
    let status = slot(&restarted, "image-policy").await;
    assert_eq!(
        (status["source"].clone(), status["sha256"].clone()),
        (json!("uploaded"), installed["sha256"].clone())
    );
}

async fn a_plugin_directory_is_followed_as_files_change(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(engine, |config| {
        config.plugins.dir = dir.path().to_owned();
        config.plugins.sync_interval_ms = 100;
    })
    .await;
    let project = project(&app).await;
    let wait_for = |source: &'static str, sha: Option<String>| {
        let app = &app;
        async move {
            let started = Instant::now();
            loop {
                let status = slot(app, "image-policy").await;
                if status["source"] == source
                    && sha.as_ref().is_none_or(|sha| status["sha256"] == sha.as_str())
                {
                    return status;
                }
                assert!(started.elapsed() < Duration::from_secs(5), "still {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let file = dir.path().join("image-policy.wasm");
    std::fs::write(&file, guest("deny_latest.wasm")).unwrap();
    let loaded = wait_for("file", None).await;
    assert_eq!(loaded["path"], file.display().to_string());
    expect_error(
        app.post("/v1/apps", &app_body(&project, "l", "nginx:latest")).await,
        StatusCode::BAD_REQUEST,
        "latest",
    )
    .await;

    // A broken file is refused; the slot keeps the last good one.
    std::fs::write(&file, guest("always_trap.wasm")).unwrap();
    let started = Instant::now();
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(r#"kubeop_plugin_loads_total{outcome="refused",slot="image-policy"} 1"#) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the broken file was not looked at");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slot(&app, "image-policy").await["sha256"], loaded["sha256"]);

    // An upload wins over the directory. Deleting it falls back past the broken file to the
    // built-in: the deleted upload never stays.
    expect_json(app.upload_plugin("image-policy", guest("hostile.wasm")).await, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slot(&app, "image-policy").await["source"], "uploaded");
    let back = expect_json(app.delete("/v1/platform/plugins/image-policy").await, StatusCode::OK).await;
    assert_eq!(back["source"], "builtin");
    // A good file again is picked up.
    std::fs::write(&file, guest("deny_latest.wasm")).unwrap();
    wait_for("file", Some(loaded["sha256"].as_str().unwrap().to_owned())).await;

    // Without the file, the built-in.
    std::fs::remove_file(&file).unwrap();
    wait_for("builtin", None).await;
    expect_json(app.post("/v1/apps", &app_body(&project, "l", "nginx:latest")).await, StatusCode::OK).await;
}

async fn hostile_plugins_fail_only_their_own_call(engine: Engine) {
    // Per-slot limits: a generous deadline (tests share two cores) and a small memory cap, so
    // each misbehaviour meets the limit it is about.
    let app = TestApp::spawn_with(engine, |config| {
        config.plugins.image_policy.deadline_ms = Some(300);
        config.plugins.image_policy.memory_mib = Some(16);
    })
    .await;
    let project = project(&app).await;
    // It passes the self-check: it misbehaves only for some images.
    expect_json(app.upload_plugin("image-policy", guest("hostile.wasm")).await, StatusCode::OK).await;
    let cases = [
        ("loop", "timeout", "300 ms deadline"),
        ("alloc", "memory", "16 MiB memory limit"),
        ("trap", "trap", "trapped"),
        ("recurse", "stack_overflow", "stack"),
        ("huge", "output_too_large", "output"),
    ];
    for (image, kind, needle) in cases {
        let response =
            app.post("/v1/apps", &app_body(&project, image, &format!("docker.io/library/{image}:1"))).await;
        let message =
            expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "image policy unavailable").await;
        assert!(message.contains(needle), "{image}: {message}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let line = format!(r#"kubeop_plugin_call_failures_total{{kind="{kind}",slot="image-policy"}} 1"#);
        assert!(metrics.contains(&line), "{image}: no {line}");
    }
    // Every call starts from a fresh instance: no state survives from the call before.
    for attempt in 0..3 {
        let response = app
            .post("/v1/apps", &app_body(&project, &format!("count-{attempt}"), "docker.io/library/count:1"))
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "call number 1 of this instance").await;
    }
    // Flooding the log is cut short but harms nothing.
    let flood = app.post("/v1/apps", &app_body(&project, "flood", "docker.io/library/log-flood:1")).await;
    assert!(matches!(flood.status(), StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE), "{}", flood.status());
    let apps_before = app.count_rows("apps").await;

    // Well-behaved requests keep succeeding while hostile calls are being killed.
    let mut hostile = Vec::new();
    for i in 0..8 {
        let body = app_body(&project, &format!("loop-{i}"), "docker.io/library/loop:1");
        let request = app.request(reqwest::Method::POST, "/v1/apps").json(&body);
        hostile.push(tokio::spawn(async move { request.send().await.unwrap().status() }));
    }
    let mut good = Vec::new();
    for i in 0..24 {
        let body = app_body(&project, &format!("ok-{i}"), "docker.io/library/nginx:1.25");
        let request = app.request(reqwest::Method::POST, "/v1/apps").json(&body);
        good.push(tokio::spawn(async move { request.send().await.unwrap().status() }));
    }
    for task in good {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    for task in hostile {
        assert_eq!(task.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(app.count_rows("apps").await, apps_before + 24, "only the good requests wrote");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// A plugin that uses Rust's standard library to read files, open sockets, resolve names and
/// read the environment loads (WASI 0.2 is linked) and gets nothing: every attempt fails with
/// the ordinary error, as its own error; clocks answer.
async fn the_sandbox_grants_nothing_behind_wasi(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let project = project(&app).await;
    expect_json(app.upload_plugin("image-policy", guest("hostile.wasm")).await, StatusCode::OK).await;
    let report = expect_error(
        app.post("/v1/apps", &app_body(&project, "snoop", "docker.io/library/snoop:1")).await,
        StatusCode::BAD_REQUEST,
        "file=",
    )
    .await;
    for expected in [
        "file=NotFound",
        "relative=NotFound",
        "dir=NotFound",
        "create=NotFound",
        "tcp=PermissionDenied",
        "listen=PermissionDenied",
        "udp=PermissionDenied",
        "env=0",
        "args=0",
        "clock=true",
    ] {
        assert!(report.contains(expected), "{expected} in {report}");
    }
    // Name lookup fails as getaddrinfo fails (Rust reports it as uncategorised).
    assert!(report.contains("dns=") && !report.contains("dns=resolved"), "{report}");
}
