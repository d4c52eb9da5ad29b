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
    for command in ["serve", "operator", "admission", "migrate", "token", "config", "openapi"] {
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
fn database_passwords_never_print() {
    let dir = tempfile::tempdir().unwrap();
    for url in
        ["postgres://postgres:p@ssWORD@127.0.0.1:1/db", "postgres://postgres@127.0.0.1:1/db?password=QueryPw"]
    {
        let out = run(kubeop(dir.path()).arg("config").env("KUBEOP_DB_URL", url));
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("ssWORD") && !text.contains("QueryPw"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        // Nor in the line that stops a start on an unreachable database.
        let out = run(kubeop(dir.path())
            .arg("migrate")
            .env("KUBEOP_DB_URL", url)
            .env("KUBEOP_DB__ACQUIRE_TIMEOUT_SECS", "1"));
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("cannot open the database at postgres://postgres"), "{err}");
        assert!(!err.contains("ssWORD") && !err.contains("QueryPw"), "{err}");
    }
}

#[test]
fn any_profile_with_a_file_loads_and_a_strict_one_keeps_the_safeguards() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for file in ["default.toml", "development.toml", "production.toml"] {
        std::fs::copy(shipped.join(file), config.join(file)).unwrap();
    }
    std::fs::write(config.join("staging.toml"), "strict = true\n[log]\nformat = \"json\"\n").unwrap();
    std::fs::write(config.join("qa.toml"), "[auth]\nrequire = false\n").unwrap();
    let with_profile = |profile: &str| {
        let mut command = kubeop(dir.path());
        command.args(["config"]).env("KUBEOP_PROFILE", profile);
        command
    };
    let qa = run(&mut with_profile("qa"));
    assert!(qa.status.success(), "{}", stderr(&qa));
    assert!(stdout(&qa).contains("profile = \"qa\""));
    let staging = run(&mut with_profile("staging"));
    assert_eq!(staging.status.code(), Some(2));
    assert!(stderr(&staging).contains("KUBEOP_JWT_SIGNING_KEY: the staging profile"), "{}", stderr(&staging));
    let staging = run(with_profile("staging").env("KUBEOP_JWT_SIGNING_KEY", KEY));
    assert!(staging.status.success(), "{}", stderr(&staging));
    assert!(stdout(&staging).contains("strict = true"));
    let missing = run(&mut with_profile("eu-west"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("eu-west.toml"), "{}", stderr(&missing));
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
        (vec![("KUBEOP_RATE_CPU_MILLI", "0.0.1".into())], "KUBEOP_RATE_CPU_MILLI"),
        (vec![("KUBEOP_RATE_CPU_MILLI", "1e-3".into())], "KUBEOP_RATE_CPU_MILLI"),
        (vec![("KUBEOP_RATE_MEM_MIB", "abc".into())], "KUBEOP_RATE_MEM_MIB"),
        (vec![("KUBEOP_QUOTA_MAX_REQUESTS_CPU", "4 cores".into())], "KUBEOP_QUOTA_MAX_REQUESTS_CPU"),
        (vec![("KUBEOP_EGRESS_BASELINE", "10.0.0.0/33".into())], "KUBEOP_EGRESS_BASELINE"),
        (vec![("KUBEOP_IMAGE_ALLOWLIST", "docker.io,not a registry".into())], "KUBEOP_IMAGE_ALLOWLIST"),
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
fn migrate_creates_the_schema_and_serve_reports_its_build_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kubeop(dir.path()).arg("migrate").env("KUBEOP_LOG__FILTER", "info"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join(".kubeop/kubeop.db").exists());

    let (mut child, addr, mut lines) = serve_logged(dir.path(), &[]);
    // The binary is stamped with the commit and time it was built from.
    let version: serde_json::Value = serde_json::from_str(&http_get(&addr, "/version")).unwrap();
    let commit = version["gitCommit"].as_str().unwrap();
    let hex = commit.trim_end_matches("-dirty");
    assert!(hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
    let date = version["buildDate"].as_str().unwrap();
    assert!(date.ends_with('Z') && date.len() == 20, "{version}");
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

/// The built-in components, as kubeop-plugins' `build.rs` built them to embed them.
fn builtin(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm-plugins/wasm32-wasip2/release")
        .join(file)
}

/// One plain HTTP/1.0 request: the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(addr, method, path, "", body)
}

/// The same with more header lines (each ending in `\r\n`).
fn http_with(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

fn http_get(addr: &str, path: &str) -> String {
    http(addr, "GET", path, "").1
}

type LogLines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// `kubeop serve` on a free port: the child, its address and the rest of its (JSON) log.
fn serve_logged(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String, LogLines) {
    let mut child = kubeop(dir)
        .arg("serve")
        .env("KUBEOP_HTTP_ADDR", "127.0.0.1:0")
        .env("KUBEOP_LOG__FORMAT", "json")
        .envs(env.iter().copied())
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
    (child, addr, lines)
}

/// `kubeop serve` on a free port, its log drained so it never blocks on a full pipe.
fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let (child, addr, lines) = serve_logged(dir, env);
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

#[test]
fn the_seed_variables_written_as_users_write_them_start_and_price_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        dir.path(),
        &[
            ("KUBEOP_RATE_CPU_MILLI", "0.01"),
            ("KUBEOP_RATE_MEM_MIB", "0.001"),
            ("KUBEOP_QUOTA_MAX_REQUESTS_CPU", "4"),
            ("KUBEOP_QUOTA_MAX_REQUESTS_MEMORY", "8Gi"),
            ("KUBEOP_IMAGE_ALLOWLIST", "docker.io,ghcr.io"),
            ("KUBEOP_EGRESS_BASELINE", "10.0.0.0/8,172.16.0.0/12"),
            ("KUBEOP_REQUIRE_AUTH", "false"),
        ],
    );
    let policy: serde_json::Value = serde_json::from_str(&http_get(&addr, "/v1/platform/policy")).unwrap();
    assert_eq!(policy["imageAllowlist"], serde_json::json!(["docker.io", "ghcr.io"]));
    assert_eq!(policy["egressBaseline"], serde_json::json!(["10.0.0.0/8", "172.16.0.0/12"]));
    assert_eq!(policy["quotaMax"], serde_json::json!({"requestsCPU": "4", "requestsMemory": "8Gi"}));
    let (status, tenant) = http(&addr, "POST", "/v1/tenants", r#"{"name":"acme"}"#);
    assert_eq!(status, 200, "{tenant}");
    let tenant: serde_json::Value = serde_json::from_str(&tenant).unwrap();
    let tenant = tenant["id"].as_str().unwrap();
    // 100 milli-CPU and 200 MiB for one hour: 100 × 0.01 + 200 × 0.001 = 1.20.
    // The current hour: always in this month's invoice, never in the future.
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z");
    let point = format!(r#"[{{"ts":"{hour}","tenant_id":"{tenant}","cpu_milli":100,"mem_mib":200}}]"#);
    let (status, answer) = http(&addr, "POST", "/v1/usage/ingest", &point);
    assert_eq!(status, 200, "{answer}");
    let (status, invoice) = http(&addr, "GET", &format!("/v1/invoices/{tenant}"), "");
    assert_eq!(status, 200, "{invoice}");
    assert!(invoice.contains("\"subtotal\":1.20"), "{invoice}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The production log names each request by its id, as the client sent it (JSON-escaped), and
/// writes the line at once when the server is otherwise idle.
#[test]
fn the_access_log_names_each_request_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, lines) = serve_logged(dir.path(), &[("KUBEOP_REQUIRE_AUTH", "false")]);
    let (entries, received) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for entry in lines.map_while(Result::ok).filter_map(|line| serde_json::from_str(&line).ok()) {
            let _ = entries.send(entry);
        }
    });
    let (status, answer) = http_with(&addr, "POST", "/v1/tenants", "x-request-id: req-\"42\"\r\n", "{}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        let Ok(entry) = received.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break false;
        };
        if entry["message"] == "request" && entry["request_id"] == "req-\"42\"" {
            break entry["path"] == "/v1/tenants" && entry["status"] == 400;
        }
        seen.push(entry);
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 400, "{answer}");
    assert!(found, "no access line for the request within 10 s: {seen:#?}");
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
    assert!(text.contains("kubeop:plugin/host@0.1.1"), "{text}");
    let line = |text: &str, import: &str| -> String {
        text.lines().find(|l| l.trim_start().starts_with(import)).unwrap_or_default().to_owned()
    };
    assert!(line(&text, "wasi:cli/environment@").contains("linked, no authority: no variables"), "{text}");

    // A component importing more than kubeop and WASI 0.2: each import says what it gets.
    let out = run(kubeop(dir.path()).arg("plugin").arg("check").arg(builtin("unknown_import.wasm")));
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        line(&text, "kubeop-test:unknown/vault").contains("REFUSED: kubeop does not provide it"),
        "{text}"
    );
    let snoop = stdout(&run(kubeop(dir.path()).arg("plugin").arg("check").arg(builtin("hostile.wasm"))));
    assert!(
        line(&snoop, "wasi:filesystem/preopens@").contains("linked, no authority: no preopened"),
        "{snoop}"
    );
    assert!(line(&snoop, "wasi:sockets/tcp@").contains("linked, no authority: every address"), "{snoop}");

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

/// Every dependency of the binary is built with the same features by README command 1
/// (`cargo run -p kubeop`) as by command 2 (`cargo test --workspace`), so the second command
/// compiles none of them again. A dependency added to the tests or the benchmarks can break
/// this; the fix is the feature list in `host/kubeop/Cargo.toml`.
#[test]
fn build_shares_the_test_commands_features() {
    use std::collections::{BTreeMap, BTreeSet};
    // Each package with the feature sets it is built with (one per platform it is built for).
    let features = |selection: &[&str], edges: &str| -> BTreeMap<String, BTreeSet<String>> {
        let output = Command::new(env!("CARGO"))
            .args(["tree", "--locked", "--prefix", "none", "--format", "{p}|{f}", "-e", edges])
            .args(selection)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree runs");
        assert!(output.status.success(), "cargo tree: {}", stderr(&output));
        let mut packages = BTreeMap::<String, BTreeSet<String>>::new();
        for line in stdout(&output).lines() {
            let line = line.trim_end_matches(" (*)");
            if let Some((package, features)) = line.split_once('|') {
                let package = package.trim_end_matches(" (proc-macro)").to_owned();
                packages.entry(package).or_default().insert(features.to_owned());
            }
        }
        packages
    };
    let binary = features(&["-p", "kubeop"], "normal,build");
    let tests = features(&["--workspace"], "normal,build,dev");
    let differ: Vec<String> = binary
        .iter()
        .filter(|(package, sets)| tests.get(*package).is_some_and(|other| other != *sets))
        .map(|(package, sets)| format!("{package}: {sets:?} here, {:?} in the tests", tests[package]))
        .collect();
    assert!(differ.is_empty(), "features the test command turns on: {differ:#?}");
}

/// `kubeop operator` as its own process, against the fake API server over HTTPS: it serves its
/// endpoints, takes the lease, turns a Project into its namespace, and on SIGTERM stops and
/// releases the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_as_its_own_process_and_stops_on_sigterm() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = kubeop_fake_kube::FakeKube::new();
    let crds: Api<CustomResourceDefinition> = Api::all(fake.client());
    for crd in kubeop_crds::definitions() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let namespaces: Api<Namespace> = Api::all(fake.client());
    let system = Namespace {
        metadata: ObjectMeta { name: Some("kubeop-system".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &system).await.unwrap();
    let https = fake.serve_https().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig()).unwrap();

    let mut child = kubeop(dir.path())
        .arg("operator")
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBEOP_OPERATOR__METRICS_ADDR", "127.0.0.1:0")
        .env("KUBEOP_OPERATOR__LEASE_DURATION_SECS", "3")
        .env("KUBEOP_OPERATOR__LEASE_GRACE_SECS", "1")
        .env("KUBEOP_LOG__FORMAT", "json")
        .env("KUBEOP_LOG__FILTER", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::task::spawn_blocking(move || {
        let addr = loop {
            let line = lines.next().expect("the operator logs its address").unwrap();
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = entry["addr"].as_str() {
                break addr.to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        addr
    })
    .await
    .unwrap();
    let get = |path: &'static str| {
        let addr = addr.clone();
        async move { tokio::task::spawn_blocking(move || http(&addr, "GET", path, "")).await.unwrap() }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let version: serde_json::Value = serde_json::from_str(&get("/version").await.1).unwrap();
    assert_eq!(version["service"], "operator", "{version}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the operator never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A Project as the manager writes it becomes its namespace.
    let project: kubeop_crds::Project = serde_json::from_value(serde_json::json!({
        "apiVersion": "paas.kubeop.io/v1alpha1", "kind": "Project",
        "metadata": {"name": "p-01jd5x7k3q9m2n4p6r8s0t1v2w", "labels": {
            "paas.kubeop.io/tenant-id": "t_01jd5x7k3q9m2n4p6r8s0t1v2w",
            "paas.kubeop.io/project-id": "p_01jd5x7k3q9m2n4p6r8s0t1v2w",
            "app.kubernetes.io/managed-by": "kubeop"}},
        "spec": {"tenantRef": "t-01jd5x7k3q9m2n4p6r8s0t1v2w", "name": "web", "namespace": "kubeop-acme-web"}
    }))
    .unwrap();
    let projects: Api<kubeop_crds::Project> = Api::all(fake.client());
    projects
        .patch("p-01jd5x7k3q9m2n4p6r8s0t1v2w", &PatchParams::apply("kubeop"), &Patch::Apply(&project))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.object("v1", "resourcequotas", Some("kubeop-acme-web"), "kubeop-quota").is_none() {
        assert!(Instant::now() < deadline, "the Project never became its namespace");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get("/metrics").await.1;
    assert!(metrics.contains("kubeop_operator_leader 1"), "{metrics}");
    assert!(metrics.contains("kubeop_operator_reconciles_total{controller=\"project\""), "{metrics}");
    let lease = || fake.object("coordination.k8s.io/v1", "leases", Some("kubeop-system"), "kubeop-operator");
    assert!(lease().unwrap()["spec"]["holderIdentity"].is_string(), "it holds the lease");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "a SIGTERM stop exits 0: {status:?}");
    let holder = lease().unwrap()["spec"]["holderIdentity"].clone();
    assert!(holder.is_null() || holder == "", "the lease is released on the way out: {holder}");
}

/// One HTTP/1.0 request over TLS to `kubeop admission`, trusting only `ca_pem` and checking the
/// certificate for the admission Service's name, as the API server does: status and body.
async fn https(port: u16, ca_pem: &[u8], method: &str, path: &str, body: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("kubeop-admission.kubeop-system.svc").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("the injected CA verifies the webhook");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: kubeop-admission.kubeop-system.svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server closes after an HTTP/1.0 answer; a TLS close without close_notify still ends it.
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// `kubeop admission` as its own process against the fake API server over HTTPS: it generates
/// its certificate, injects the CA, answers AdmissionReviews, swaps its plugin on SIGHUP (the
/// timer is an hour, so only the signal can do it) and exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_runs_as_its_own_process_swaps_on_sighup_and_stops_on_sigterm() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ObjectMeta, PostParams};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = kubeop_fake_kube::FakeKube::new();
    let namespaces: Api<Namespace> = Api::all(fake.client());
    for name in ["kubeop-system", "kubeop-acme-web"] {
        let namespace = Namespace {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    }
    let webhooks: serde_json::Value = serde_saphyr::from_multiple::<serde_json::Value>(include_str!(
        "../../../deploy/admission/webhooks.yaml"
    ))
    .unwrap()
    .into_iter()
    .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
    .unwrap();
    let webhooks: ValidatingWebhookConfiguration = serde_json::from_value(webhooks).unwrap();
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(fake.client());
    configs.create(&PostParams::default(), &webhooks).await.unwrap();
    let served = fake.serve_https().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, served.admin_kubeconfig()).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();

    let mut child = kubeop(dir.path())
        .arg("admission")
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBEOP_ADMISSION__ADDR", "127.0.0.1:0")
        .env("KUBEOP_PLUGINS__DIR", &plugins)
        .env("KUBEOP_PLUGINS__SYNC_INTERVAL_MS", "3600000")
        .env("KUBEOP_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = tokio::task::spawn_blocking(move || {
        let addr = loop {
            let line = lines.next().expect("the webhook logs its address").unwrap();
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = entry["addr"].as_str() {
                break addr.to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        addr.rsplit(':').next().unwrap().parse().unwrap()
    })
    .await
    .unwrap();
    let ca = configs.get("kubeop-admission").await.unwrap().webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("the CA is injected before the webhook serves")
        .0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while https(port, &ca, "GET", "/readyz", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "the webhook never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let review = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../webhook/tests/fixtures/deployment-create-allowed.json"),
    )
    .unwrap();
    let allowed = |answer: &(u16, String)| -> bool {
        assert_eq!(answer.0, 200, "{}", answer.1);
        let review: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
        review["response"]["allowed"].as_bool().unwrap()
    };
    assert!(allowed(&https(port, &ca, "POST", "/validate", &review).await));

    // The example policy (a team label on every Deployment), then SIGHUP.
    std::fs::copy(builtin("require_team_label.wasm"), plugins.join("admission.wasm")).unwrap();
    let hup = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while allowed(&https(port, &ca, "POST", "/validate", &review).await) {
        assert!(Instant::now() < deadline, "SIGHUP did not swap the admission plugin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "a SIGTERM stop exits 0: {status:?}");
}
