//! The JavaScript and Python examples (`plugins/examples/js-deny-latest`, `py-tiered-pricing`)
//! answer exactly as their Rust siblings do: each is built with its own `build.sh`, as the README
//! tells an operator to, and both components get the same requests. So do the ports that let the
//! benchmark compare the languages in every slot (`plugins/testing/js-require-team-label`,
//! `py-deny-latest`, `js-tiered-pricing`). And the sandbox holds for Python as for Rust
//! (`plugins/testing/py-snoop`).
//!
//! Needs npm and python3 (with venv); without them these tests fail, saying so. The first run
//! downloads componentize-js and componentize-py; later ones use npm's and pip's caches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use kubeop_plugins::{SlotKind, Standalone};
use serde_json::{Value, json};

#[test]
fn the_javascript_image_policy_answers_as_the_rust_one() {
    let js = build_example("examples/js-deny-latest", "npm", "Node.js 18 or later with npm");
    let rust = rust_sibling("deny_latest.wasm");
    let (js, rust) = (load(SlotKind::ImagePolicy, &js), load(SlotKind::ImagePolicy, &rust));

    let answers = same_answers(&js, &rust, &image_policy_cases());
    // The table exercises both answers, not one of them twenty times.
    assert_eq!(denials(&answers), 11);
}

#[test]
fn the_python_image_policy_answers_as_the_rust_one() {
    let python = build_example("testing/py-deny-latest", "python3", "Python 3.10 or later with venv");
    let rust = rust_sibling("deny_latest.wasm");
    let (python, rust) = (load(SlotKind::ImagePolicy, &python), load(SlotKind::ImagePolicy, &rust));

    let answers = same_answers(&python, &rust, &image_policy_cases());
    assert_eq!(denials(&answers), 11);
    // Where Python's own `strip` and `lower` would differ from Rust's `trim` and
    // `eq_ignore_ascii_case`: U+001C is not White_Space, and only ASCII letters fold.
    let answers = same_answers(
        &python,
        &rust,
        &[
            image("ghcr.io/api:2", "ghcr.io", Some("2"), None, &["\u{1c}ghcr.io\u{1f}"]),
            image("ghcr.io/api:2", "ghcr.io", Some("2"), None, &["\u{2028}GHCR.IO\u{3000}"]),
            image("\u{e0}.io/api:2", "\u{e0}.io", Some("2"), None, &["\u{c0}.io"]),
            image("\u{e0}.io/api:2", "\u{e0}.io", Some("2"), None, &["\u{e0}.IO"]),
            image("k.io/api:2", "k.io", Some("2"), None, &["\u{212a}.io"]),
        ],
    );
    assert_eq!(denials(&answers), 3);
}

#[test]
fn the_python_pricing_plugin_answers_as_the_rust_one() {
    let python = build_example("examples/py-tiered-pricing", "python3", "Python 3.10 or later with venv");
    let rust = rust_sibling("tiered_pricing.wasm");
    let (python, rust) = (load(SlotKind::Pricing, &python), load(SlotKind::Pricing, &rust));

    let answers = same_answers(&python, &rust, &pricing_cases());
    assert_eq!(errors(&answers), 12, "the table's errors are errors and only they");
}

#[test]
fn the_javascript_pricing_plugin_answers_as_the_rust_one() {
    let js = build_example("testing/js-tiered-pricing", "npm", "Node.js 18 or later with npm");
    let rust = rust_sibling("tiered_pricing.wasm");
    let (js, rust) = (load(SlotKind::Pricing, &js), load(SlotKind::Pricing, &rust));

    let answers = same_answers(&js, &rust, &pricing_cases());
    assert_eq!(errors(&answers), 12, "the table's errors are errors and only they");
    // A rate that is not a number is quoted in the error as Rust's `{:?}` quotes it, which
    // escapes what it does not print and combining marks.
    let quoted: Vec<Value> = [
        "1\u{301}",
        "\u{a0}1",
        "1\u{200b}",
        "\u{e000}\u{378}\u{7f}\u{1b}",
        "\u{e9}\u{663}\u{1f600}",
        "\0\t\r\n'\"\\",
        "\u{fe0f}\u{e0001}\u{10ffff}",
    ]
    .iter()
    .map(|rate| pricing(rate, "0.00001", "0", 2, &[(1000, 600_000)]))
    .collect();
    assert_eq!(errors(&same_answers(&js, &rust, &quoted)), quoted.len());
}

#[test]
fn the_javascript_admission_review_answers_as_the_rust_one() {
    let js = build_example("testing/js-require-team-label", "npm", "Node.js 18 or later with npm");
    let rust = rust_sibling("require_team_label.wasm");
    let (js, rust) = (load(SlotKind::Admission, &js), load(SlotKind::Admission, &rust));

    let team = |team: Value| deployment("CREATE", json!({"app": "web", "team": team}));
    let unlabelled = || deployment("CREATE", json!({"app": "web"}));
    let with = |mut review: Value, field: &str, value: Value| {
        review[field] = value;
        review
    };
    let of_kind = |group: &str, kind: &str| {
        with(unlabelled(), "kind", json!({"group": group, "version": "v1", "kind": kind}))
    };
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let mut cases = vec![
        admit(&team(json!("payments")), &[]),
        admit(&deployment("UPDATE", json!({"team": "payments"})), &[]),
        admit(&unlabelled(), &[]),
        admit(&deployment("UPDATE", json!({"app": "web"})), &[]),
        admit(&deployment("CREATE", json!(null)), &[]),
        admit(&with(unlabelled(), "object", json!({"metadata": {"name": "web"}})), &[]),
        admit(&with(unlabelled(), "object", json!(null)), &[]),
        // In audit mode the denial is a warning; other rules' names change nothing.
        admit(&unlabelled(), &["team-label"]),
        admit(&unlabelled(), &["image-allowlist", "team-label"]),
        admit(&unlabelled(), &["image-allowlist"]),
        admit(&team(json!("payments")), &["team-label"]),
        // Only Deployments of group apps, created or updated, and not their subresources.
        admit(&deployment("DELETE", json!({})), &[]),
        admit(&deployment("create", json!({})), &[]),
        admit(&of_kind("apps", "StatefulSet"), &[]),
        admit(&of_kind("example.com", "Deployment"), &[]),
        admit(&with(unlabelled(), "kind", json!({"version": "v1", "kind": "Deployment"})), &[]),
        admit(&with(unlabelled(), "kind", json!("apps/v1 Deployment")), &[]),
        admit(&with(unlabelled(), "subResource", json!("status")), &[]),
        admit(&with(deployment("UPDATE", json!({})), "subResource", json!("scale")), &[]),
        admit(&with(unlabelled(), "subResource", json!("")), &[]),
        admit(&with(unlabelled(), "subResource", json!(7)), &[]),
        admit(&with(unlabelled(), "operation", json!(1)), &[]),
        admit(&pod(), &[]),
        // Only a string with more than White_Space is a team, trimmed as Rust trims.
        admit(&team(json!("")), &[]),
        admit(&team(json!(" \t\n")), &[]),
        admit(&team(json!("\u{85}\u{a0}\u{3000}")), &[]),
        admit(&team(json!("\u{feff}")), &[]),
        admit(&team(json!("\u{200b}")), &[]),
        admit(&team(json!(" payments ")), &[]),
        admit(&team(json!(42)), &[]),
        admit(&team(json!(true)), &[]),
        admit(&team(json!(["payments"])), &[]),
        admit(&team(json!({"name": "payments"})), &[]),
        admit(&deployment("CREATE", json!("team=payments")), &[]),
        admit(&deployment("CREATE", json!(["team", "payments"])), &[]),
    ];
    cases.extend(
        [
            // At the edges of JSON, where serde_json and JSON.parse differ or could: syntax,
            // numbers out of f64's range (as serde_json computes it), lone surrogates, depth.
            "{".to_owned(),
            String::new(),
            "{} {}".to_owned(),
            "{\"a\": 01}".to_owned(),
            "{\"a\": 'b'}".to_owned(),
            "{\"a\": 1,}".to_owned(),
            "{\"a\": 1e400}".to_owned(),
            "{\"a\": -1e400}".to_owned(),
            format!("{{\"a\": 1{}}}", "0".repeat(400)),
            "{\"a\": 1e-400}".to_owned(),
            "{\"a\": 1.7976931348623157e308}".to_owned(),
            "{\"a\": 1.7976931348623158e308}".to_owned(),
            "{\"a\": \"\\ud800\"}".to_owned(),
            "{\"\\udc00\": 1}".to_owned(),
            "{\"a\": \"\\ud83d\\ude00\"}".to_owned(),
            nested(127),
            nested(128),
            format!("{{\"object\": {}}}", nested(126)),
            format!("{{\"object\": {}}}", nested(127)),
            // Any JSON value is a review; what is not an object is not a Deployment.
            "null".to_owned(),
            "[]".to_owned(),
            "\"Deployment\"".to_owned(),
            " {}\n".to_owned(),
        ]
        .iter()
        .map(|review| admit_text(review, &[])),
    );
    // The last of two keys counts, in both; `__proto__` is a key like any other.
    let twice = |first: &str, last: &str| {
        let review = deployment(last, json!({})).to_string();
        admit_text(&review.replacen('{', &format!("{{\"operation\": \"{first}\", "), 1), &[])
    };
    cases.extend([
        twice("DELETE", "CREATE"),
        twice("CREATE", "DELETE"),
        admit(&deployment("CREATE", json!({"__proto__": {"team": "payments"}})), &[]),
        admit(&with(unlabelled(), "__proto__", json!({"subResource": "status"})), &[]),
    ]);

    let answers = same_answers(&js, &rust, &cases);
    let denied = answers.iter().filter(|answer| answer["allowed"] == false).count();
    let warned = answers.iter().filter(|answer| answer["warnings"] != json!([])).count();
    assert_eq!((answers.len(), denied, warned), (62, 34, 2));
    assert!(answers.iter().all(|answer| answer["patch"].is_null()), "require-team-label patches nothing");

    // The one difference, not the port's: componentize-js 0.23.0 drops a leading U+FEFF from
    // every string the host passes in, so the plugin reads "\u{feff}{}" (not JSON) as "{}".
    // Harmless here: the webhook passes the review's raw `request` object, which starts with `{`.
    let bom = admit_text("\u{feff}{}", &[]);
    assert_eq!(call(&rust, &bom)["allowed"], false);
    assert_eq!(call(&js, &bom)["allowed"], true, "componentize-js now keeps the BOM: move this case up");
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

/// Asks both plugins each request and asserts that the port answers as the Rust plugin does;
/// returns the answers.
fn same_answers(port: &Standalone, rust: &Standalone, requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .map(|request| {
            let expected = call(rust, request);
            assert_eq!(call(port, request), expected, "for {request}");
            expected
        })
        .collect()
}

fn denials(answers: &[Value]) -> usize {
    answers.iter().filter(|answer| answer.get("Deny").is_some()).count()
}

fn errors(answers: &[Value]) -> usize {
    answers.iter().filter(|answer| answer.get("Err").is_some()).count()
}

/// Image requests for deny-latest and its ports: allowed and denied, tags, digests, allowlists.
fn image_policy_cases() -> Vec<Value> {
    let allowlist = ["docker.io", "ghcr.io", "localhost:5000"];
    vec![
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
    ]
}

/// Pricing requests for tiered-pricing and its ports: precisions, discounts, usage on both sides
/// of the tier, and rates that are errors.
fn pricing_cases() -> Vec<Value> {
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
    cases
}

/// Runs `plugins/<example>/build.sh` and returns the component. The example is built from a copy of
/// its files: host/plugins/build.rs watches plugins/, and a node_modules or .venv written there
/// would rebuild the host on the next cargo command. The copy stays in cargo's temporary
/// directory between runs, so npm and pip mostly find what they need in place.
///
/// One build at a time, and each example once per test run: tests that share an example would
/// otherwise race in its copy, and parallel builds would only slow each other down.
pub(crate) fn build_example(example: &str, tool: &str, install: &str) -> Vec<u8> {
    static BUILT: Mutex<BTreeMap<String, Vec<u8>>> = Mutex::new(BTreeMap::new());
    // A failed build fails its test, not every later one.
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(component) = built.get(example) {
        return component.clone();
    }
    let component = build(example, tool, install);
    built.insert(example.to_owned(), component.clone());
    component
}

fn build(example: &str, tool: &str, install: &str) -> Vec<u8> {
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

/// An admission request for `review`, the AdmissionReview's `request` object.
fn admit(review: &Value, audit_rules: &[&str]) -> Value {
    admit_text(&review.to_string(), audit_rules)
}

/// An admission request whose review is `review`, as text that may not be JSON at all.
fn admit_text(review: &str, audit_rules: &[&str]) -> Value {
    json!({
        "review": review, "tenant_id": "t_1", "project_id": "p_1",
        "policy": {"image_allowlist": [], "egress_baseline": [],
                   "quota_max_requests_cpu": null, "quota_max_requests_memory": null},
        "admission": {"allowed_hosts": [], "allowed_service_types": [], "audit_rules": audit_rules},
        "host_claims": []
    })
}

/// The `request` of an AdmissionReview v1 for a Deployment with `labels`, as the API server
/// sends it.
fn deployment(operation: &str, labels: Value) -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "web", "namespace": "kubeop-acme-web", "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "kubeop-acme-web", "labels": labels},
                   "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
        "oldObject": null, "dryRun": false
    })
}

/// The same for a Pod, which the rule leaves alone.
fn pod() -> Value {
    json!({
        "uid": "0b7a1c52-2d3e-4f60-8a1b-9c0d1e2f3a4b",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web", "namespace": "kubeop-acme-web", "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                   "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
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
