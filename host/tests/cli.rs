//! The `kubeop` command as an operator runs it: help, configuration, start-up refusals, tokens,
//! migrations and a graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

const KEY: &str = "a2V5LWZvci10aGUtY2xpLXRlc3RzLWEta2V5LWZvci10aGUtY2xp"; // 38 bytes

/// `kubeop` with a clean environment (no KUBEOP_* from the developer's shell) and its own data
/// directory.
fn kubeop(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeop"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KUBEOP_") {
            command.env_remove(name);
        }
    }
    command.current_dir(data_dir);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("kubeop runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path()).arg("--help"));
    assert!(out.status.success());
    for command in ["serve", "migrate", "token", "config", "openapi"] {
        assert!(stdout(&out).contains(command), "--help lacks {command}:\n{}", stdout(&out));
    }
}

#[test]
fn config_prints_the_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path())
        .arg("config")
        .env("KUBEOP_JWT_SIGNING_KEY", KEY)
        .env("KUBEOP_DB_URL", "postgres://kubeop:hunter2@db:5432/kubeop")
        .env("KUBEOP_DB__MAX_CONNECTIONS", "7")
        .env("KUBEOP_HTTP_ADDR", ":9000"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("profile = \"development\""), "{text}");
    assert!(text.contains("addr = \":9000\""), "{text}");
    assert!(text.contains("max_connections = 7"), "{text}");
    assert!(text.contains("jwt_signing_key = \"<redacted>\""), "{text}");
    assert!(text.contains("postgres://kubeop:<redacted>@db:5432/kubeop"), "{text}");
    assert!(!text.contains(KEY) && !text.contains("hunter2"), "{text}");
    // The development profile turns auth off.
    assert!(text.contains("require = false"), "{text}");
}

#[test]
fn layers_apply_in_order_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("override.toml");
    std::fs::write(&file, "[http]\nbody_limit_bytes = 2048\nshutdown_grace_secs = 3\n").unwrap();
    let out = run(kubeop(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env("KUBEOP_HTTP__SHUTDOWN_GRACE_SECS", "9"));
    let text = stdout(&out);
    assert!(text.contains("body_limit_bytes = 2048"), "{text}");
    assert!(text.contains("shutdown_grace_secs = 9"), "{text}");

    let missing = run(kubeop(dir.path()).args(["--config", "nope.toml", "config"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("nope.toml"));

    std::fs::write(&file, "[http]\nbody_limit = 1\n").unwrap();
    let typo = run(kubeop(dir.path()).arg("--config").arg(&file).arg("config"));
    assert_eq!(typo.status.code(), Some(2));
    assert!(stderr(&typo).contains("body_limit"), "{}", stderr(&typo));
}

/// Each bad start stops with exit code 2 and one line that names the variable to fix.
#[test]
fn invalid_configuration_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let short_key = BASE64.encode([1u8; 16]);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("KUBEOP_PROFILE", "production".into())], "KUBEOP_JWT_SIGNING_KEY"),
        (
            vec![
                ("KUBEOP_PROFILE", "production".into()),
                ("KUBEOP_JWT_SIGNING_KEY", KEY.into()),
                ("KUBEOP_REQUIRE_AUTH", "false".into()),
            ],
            "KUBEOP_REQUIRE_AUTH",
        ),
        (vec![("KUBEOP_PROFILE", "staging".into())], "KUBEOP_PROFILE"),
        (vec![("KUBEOP_HTTP_ADDR", "localhost".into())], "KUBEOP_HTTP_ADDR"),
        (vec![("KUBEOP_HTTP_ADDR", "127.0.0.1:99999".into())], "KUBEOP_HTTP_ADDR"),
        (vec![("KUBEOP_JWT_SIGNING_KEY", short_key)], "KUBEOP_JWT_SIGNING_KEY"),
        (vec![("KUBEOP_JWT_SIGNING_KEY", "not base64!".into())], "KUBEOP_JWT_SIGNING_KEY"),
        (vec![("KUBEOP_KMS_MASTER_KEY", BASE64.encode([1u8; 31]))], "KUBEOP_KMS_MASTER_KEY"),
        (vec![("KUBEOP_REQUIRE_AUTH", "maybe".into())], "KUBEOP_REQUIRE_AUTH"),
        (vec![("KUBEOP_DB__MAX_CONNECTIONS", "0".into())], "KUBEOP_DB__MAX_CONNECTIONS"),
        (vec![("KUBEOP_LOG__FILTER", "kubeop=loud".into())], "KUBEOP_LOG__FILTER"),
    ];
    for (env, variable) in cases {
        let out = run(kubeop(dir.path()).arg("serve").envs(env.iter().map(|(k, v)| (k, v))));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{env:?} should stop the start: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: one line, got: {err}");
        assert!(lines[0].contains(variable), "{env:?}: {err} should name {variable}");
        assert!(!err.contains(KEY), "secrets never print");
    }
}

#[test]
fn token_mints_with_the_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path())
        .args(["token", "--role", "admin", "--ttl", "1h"])
        .env("KUBEOP_JWT_SIGNING_KEY", KEY));
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    let key = jsonwebtoken::DecodingKey::from_secret(&BASE64.decode(KEY).unwrap()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &key,
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .expect("verifies with the configured key")
    .claims;
    assert_eq!(claims["role"], "admin");
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 3600);

    let tenant = "t_01jd5x7k3q9m2n4p6r8s0t1v2w";
    let out = run(kubeop(dir.path())
        .args(["token", "--role", "tenant", "--scope", tenant, "--ttl", "30m"])
        .env("KUBEOP_JWT_SIGNING_KEY", KEY));
    let token = stdout(&out).trim().to_owned();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &key,
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .unwrap()
    .claims;
    assert_eq!(claims["scope"], format!("tenant:{tenant}"));

    let out = run(kubeop(dir.path()).args(["token", "--role", "project"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--scope"));
}

#[test]
fn migrate_creates_the_schema_and_serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path()).arg("migrate").env("KUBEOP_LOG__FILTER", "info"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join(".kubeop/kubeop.db").exists());

    let mut child = kubeop(dir.path())
        .arg("serve")
        .env("KUBEOP_HTTP_ADDR", "127.0.0.1:0")
        .env("KUBEOP_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("JSON log line: {line}"));
        if let Some(addr) = entry["addr"].as_str() {
            break addr.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    };
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "listening on {addr}");
    // SIGHUP re-reads the plugins and does not stop the server.
    let hup = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let reloaded = loop {
        let line = lines.next().expect("the server keeps logging").unwrap();
        if line.contains("SIGHUP") {
            break line;
        }
    };
    assert!(reloaded.contains("re-reading plugins"), "{reloaded}");
    assert!(std::net::TcpStream::connect(&addr).is_ok(), "still serving after SIGHUP");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a SIGTERM stop exits 0: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

/// The built-in components, as `build.rs` embedded them.
fn builtin(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("OUT_DIR")).join(file)
}

#[test]
fn plugin_check_reports_the_world_and_the_self_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path()).arg("plugin").arg("check").arg(builtin("pricing.wasm")));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("world:        pricing (self-check passed)"), "{text}");
    assert!(text.contains("exports:      price"), "{text}");
    assert!(text.contains("compile time:"), "{text}");
    assert!(text.contains("kubeop:plugin/host@0.1.0"), "{text}");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = run(kubeop(dir.path()).args(["plugin", "check"]).arg(&core));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("core WebAssembly module"), "{}", stderr(&out));
}

#[test]
fn plugin_run_calls_a_component_on_a_json_request() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let image = |registry: &str| {
        serde_json::json!({
            "image": format!("{registry}/acme/api:1"),
            "reference": {"registry": registry, "repository": "acme/api", "tag": "1", "digest": null},
            "tenant_id": "t_1", "project_id": "p_1",
            "policy": {"image_allowlist": ["ghcr.io"], "egress_baseline": [], "quota_max_requests_cpu": null, "quota_max_requests_memory": null}
        })
    };
    std::fs::write(&request, image("evil.io").to_string()).unwrap();
    let out = run(kubeop(dir.path())
        .args(["plugin", "run", "image-policy"])
        .arg(builtin("image_policy.wasm"))
        .arg("--input")
        .arg(&request));
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"Deny": "registry evil.io is not in the image allowlist (ghcr.io)"})
    );

    std::fs::write(&request, image("ghcr.io").to_string()).unwrap();
    let out = run(kubeop(dir.path())
        .args(["plugin", "run", "image-policy"])
        .arg(builtin("image_policy.wasm"))
        .arg("--input")
        .arg(&request));
    assert_eq!(stdout(&out).trim(), "\"Allow\"");

    // A request that does not fit the slot's world is refused with the reason.
    let out = run(kubeop(dir.path())
        .args(["plugin", "run", "pricing"])
        .arg(builtin("pricing.wasm"))
        .arg("--input")
        .arg(&request));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not fit the pricing world"), "{}", stderr(&out));
}
