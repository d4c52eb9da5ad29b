//! The JavaScript and Python examples (`plugins/examples/js-deny-latest`, `py-tiered-pricing`)
//! answer exactly as their Rust siblings do: each is built with its own `build.sh`, as the README
//! tells an operator to, and both components get the same requests. And the sandbox holds for
//! Python as for Rust (`plugins/testing/py-snoop`).
//!
//! Needs npm and python3 (with venv); without them these tests fail, saying so. The first run
//! downloads componentize-js and componentize-py; later ones use npm's and pip's caches.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubeop_plugins::{SlotKind, Standalone};
use serde_json::{Value, json};

#[test]
fn the_javascript_image_policy_answers_as_the_rust_one() {
    let js = build_example("examples/js-deny-latest", "npm", "Node.js 18 or later with npm");
    let rust = rust_sibling("deny_latest.wasm");
    let (js, rust) = (load(SlotKind::ImagePolicy, &js), load(SlotKind::ImagePolicy, &rust));

    let allowlist = ["docker.io", "ghcr.io", "localhost:5000"];
    let cases = [
        image("nginx:1.27", "docker.io", Some("1.27"), None, &[]),
        image("nginx:1.27", "docker.io", Some("1.27"), None, &allowlist),
        image("nginx:latest", "docker.io", Some("latest"), None, &[]),
        image("nginx:latest", "docker.io", Some("latest"), None, &allowlist),
        image("nginx", "docker.io", None, None, &[]),
        image("nginx", "docker.io", None, None, &allowlist),
        image("nginx@sha256:0123", "docker.io", None, Some("sha256:0123"), &[]),
        image("nginx:latest@sha256:0123", "docker.io", Some("latest"), Some("sha256:0123"), &[]),
        // Tags are case-sensitive; an empty tag is still a tag.
        image("nginx:Latest", "docker.io", Some("Latest"), None, &[]),
        image("nginx:", "docker.io", Some(""), None, &[]),
        image("evil.io/x:1", "evil.io", Some("1"), None, &allowlist),
        image("evil.io/x", "evil.io", None, None, &allowlist),
        // Hosts match without regard to case, ports exactly; entries are trimmed.
        image("GHCR.io/acme/api:2", "GHCR.io", Some("2"), None, &allowlist),
        image("localhost:5000/api:2", "localhost:5000", Some("2"), None, &allowlist),
        image("localhost:5001/api:2", "localhost:5001", Some("2"), None, &allowlist),
        image("localhost/api:2", "localhost", Some("2"), None, &allowlist),
        image("[::1]:5000/api:2", "[::1]:5000", Some("2"), None, &[" [::1]:5000 "]),
        image("[::1]/api:2", "[::1]", Some("2"), None, &["[::1]:5000"]),
        // Trimmed as Rust trims: U+0085 is white space, U+FEFF is not.
        image("ghcr.io/api:2", "ghcr.io", Some("2"), None, &["\u{85}ghcr.io"]),
        image("docker.io/api:2", "docker.io", Some("2"), None, &["docker.io\u{feff}"]),
    ];
    let mut denials = 0;
    for request in cases {
        let expected = call(&rust, &request);
        assert_eq!(call(&js, &request), expected, "for {request}");
        denials += usize::from(expected.get("Deny").is_some());
    }
    // The table exercises both answers, not one of them twenty times.
    assert_eq!(denials, 11);
}

#[test]
fn the_python_pricing_plugin_answers_as_the_rust_one() {
    let python = build_example("examples/py-tiered-pricing", "python3", "Python 3.10 or later with venv");
    let rust = rust_sibling("tiered_pricing.wasm");
    let (python, rust) = (load(SlotKind::Pricing, &python), load(SlotKind::Pricing, &rust));

    let small = [(1000, 600_000), (0, 400_000)];
    let over_the_tier = [(1000, 2_000_000), (250, 500_001)];
    let mut cases = Vec::new();
    for precision in [0, 2, 3] {
        for discount in ["0", "10", "100", "12.5", "0.00"] {
            cases.push(pricing("0.0004", "0.00001", discount, precision, &small));
            cases.push(pricing("0.0004", "0.00001", discount, precision, &over_the_tier));
            cases.push(pricing("0.000333", "0.000007", discount, precision, &over_the_tier));
        }
    }
    cases.extend([
        pricing("0.0004", "0.00001", "10", 2, &[]),
        // Trailing zeros are kept in unit prices, and -0 is a rate of zero.
        pricing("0.00040", "0.000010", "10.50", 2, &over_the_tier),
        pricing("-0", "-0.000", "-0", 2, &over_the_tier),
        pricing("0.0004", "0.000001", "10", 28, &small),
        pricing("0.0000000000000000000000000001", "0.0000000000000000000000000001", "0", 28, &over_the_tier),
        pricing("0.00000000000000000000000000005", "0.12345678901234567890123456789", "0", 2, &small),
        // Errors: rates that are not plain decimals, negative, out of range; amounts too large.
        pricing("ten", "0.00001", "0", 2, &small),
        pricing("1e3", "0.00001", "0", 2, &small),
        pricing("0.0004", " 1", "0", 2, &small),
        pricing("0.0004", "1.", "0", 2, &small),
        pricing("0.0004", "0.00001", "say \"10\"", 2, &small),
        pricing("0.0004", "-0.00001", "0", 2, &small),
        pricing("-1", "0.00001", "0", 2, &small),
        pricing("0.0004", "0.00001", "100.01", 2, &small),
        pricing("0.0004", "0.00001", "0", 29, &small),
        pricing("99999999999999999999999999999", "0.00001", "0", 2, &small),
        pricing("79228162514264337593543950335", "0.00001", "0", 0, &small),
        pricing("0.0004", "0.00001", "0", 28, &small),
    ]);
    let mut errors = 0;
    for request in &cases {
        let expected = call(&rust, request);
        assert_eq!(call(&python, request), expected, "for {request}");
        errors += usize::from(expected.get("Err").is_some());
    }
    assert_eq!(errors, 12, "the table's errors are errors and only they");
}

/// The sandbox from Python: CPython's runtime imports wasi:filesystem and wasi:sockets; behind
/// them there is nothing, and each attempt fails with Python's ordinary error in the plugin.
#[test]
fn a_python_plugin_reaches_no_file_socket_name_or_variable() {
    let snoop = build_example("testing/py-snoop", "python3", "Python 3.10 or later with venv");
    let snoop = load(SlotKind::ImagePolicy, &snoop);
    let request = image("nginx:1.27", "docker.io", Some("1.27"), None, &[]);
    let answer = call(&snoop, &request);
    let report = answer["Deny"].as_str().unwrap_or_else(|| panic!("a report: {answer}"));
    for expected in [
        "file=FileNotFoundError",
        "relative=FileNotFoundError",
        "listdir=FileNotFoundError",
        "write=FileNotFoundError",
        "tcp=PermissionError",
        "udp=PermissionError",
        "dns=gaierror",
        "env=0",
    ] {
        assert!(report.contains(expected), "{expected} in {report}");
    }
    assert!(!report.contains("succeeded"), "{report}");
}

/// Runs `plugins/<example>/build.sh` and returns the component. The example is built from a copy of
/// its files: host/plugins/build.rs watches plugins/, and a node_modules or .venv written there
/// would rebuild the host on the next cargo command. The copy stays in cargo's temporary
/// directory between runs, so npm and pip mostly find what they need in place.
fn build_example(example: &str, tool: &str, install: &str) -> Vec<u8> {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|out| out.status.success());
    assert!(found, "`{tool}` is needed to build plugins/{example}: install {install}");

    let source = repo().join("plugins").join(example);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("languages").join(example);
    std::fs::create_dir_all(&work).unwrap();
    // The example's own files; its directories (node_modules, .venv, …) are what builds make.
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if entry.file_type().unwrap().is_file() && !name.to_string_lossy().ends_with(".wasm") {
            std::fs::copy(entry.path(), work.join(&name)).unwrap();
        }
    }
    let output = work.join("plugin.wasm");
    let _ = std::fs::remove_file(&output);
    let built = Command::new("sh")
        .arg(work.join("build.sh"))
        .arg(&output)
        .env("KUBEOP_WIT", repo().join("wit"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "plugins/{example}/build.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::read(&output).unwrap()
}

/// A Rust example, built for wasm32-wasip2 by kubeop-plugins' build script with every guest.
fn rust_sibling(file: &str) -> Vec<u8> {
    let path = repo().join("target/wasm-plugins/wasm32-wasip2/release").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn load(kind: SlotKind, bytes: &[u8]) -> Standalone {
    Standalone::load(kind, bytes)
        .unwrap_or_else(|e| panic!("the {} component is refused: {e}", kind.as_str()))
}

/// The answer as JSON: `"Allow"`, `{"Deny": …}`, `{"Ok": [lines]}` or `{"Err": …}`.
fn call(plugin: &Standalone, request: &Value) -> Value {
    plugin.call_json(request.clone()).unwrap_or_else(|e| panic!("the call failed: {e}\nfor {request}"))
}

fn image(image: &str, registry: &str, tag: Option<&str>, digest: Option<&str>, allowlist: &[&str]) -> Value {
    json!({
        "image": image,
        "reference": {"registry": registry, "repository": "library/nginx", "tag": tag, "digest": digest},
        "tenant_id": "t_1", "project_id": "p_1",
        "policy": {"image_allowlist": allowlist, "egress_baseline": [],
                   "quota_max_requests_cpu": null, "quota_max_requests_memory": null}
    })
}

/// A request over `usage`: (milli-CPU, MiB) per hour.
fn pricing(cpu_rate: &str, mem_rate: &str, discount: &str, precision: u8, usage: &[(u64, u64)]) -> Value {
    let hours: Vec<Value> = usage
        .iter()
        .zip(0..)
        .map(|(&(cpu_milli, mem_mib), i)| json!({"hour": 3600 * i, "cpu_milli": cpu_milli, "mem_mib": mem_mib}))
        .collect();
    json!({
        "tenant_id": "t_1", "period_start": 0, "period_end": 3600 * usage.len(),
        "rates": {"cpu_milli_hour": cpu_rate, "mem_mib_hour": mem_rate, "tier": "enterprise",
                  "discount_percent": discount, "currency": "EUR", "precision": precision},
        "usage": hours
    })
}
