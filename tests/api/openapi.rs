//! The served `/openapi.json` against the tools clients use: it validates as OpenAPI 3.1, a
//! client generated from it drives the seed's flow, and an OpenAPI fuzzer finds no answer the
//! document does not describe. The Python tools (pinned in `tests/openapi/requirements.txt`) are
//! installed into a virtualenv under the target directory, once per set of pins.

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::StatusCode;
use tokio::process::Command;

use crate::helpers::{Engine, TestApp};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let document = served_document(&app).await;
    let output = python(&[&format!("{TOOLS}/validate.py"), document.to_str().unwrap()], &[]).await;
    assert_succeeded("openapi-spec-validator", &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_drives_the_seed_flow() {
    let app = TestApp::spawn_with_auth(Engine::Sqlite).await;
    assert_succeeded("the generated client", &drive(&app, "generated_client.py").await);
}

/// Every operation, fuzzed from the document, on both engines: no 5xx, no status, content type
/// or body the document does not describe, and nothing accepted that its schemas refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_conforms_to_the_document_on_sqlite() {
    let app = TestApp::spawn_with_auth(Engine::Sqlite).await;
    assert_succeeded("schemathesis", &drive(&app, "conformance.py").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_conforms_to_the_document_on_postgres() {
    let app = TestApp::spawn_with_auth(Engine::Postgres).await;
    assert_succeeded("schemathesis", &drive(&app, "conformance.py").await);
}

/// Runs `tests/openapi/<script> <document> <work dir>` against the app as its admin.
async fn drive(app: &TestApp, script: &str) -> Output {
    let document = served_document(app).await;
    let work = tempfile::tempdir().unwrap();
    python(
        &[&format!("{TOOLS}/{script}"), document.to_str().unwrap(), work.path().to_str().unwrap()],
        &[("KUBEOP_URL", &app.address), ("KUBEOP_TOKEN", app.token.as_deref().unwrap())],
    )
    .await
}

/// Saves the document as served, so the tools read exactly what clients get.
async fn served_document(app: &TestApp) -> PathBuf {
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let path = app.data_dir().join("openapi.json");
    std::fs::write(&path, response.bytes().await.unwrap()).unwrap();
    path
}

async fn python(args: &[&str], env: &[(&str, &str)]) -> Output {
    let venv = virtualenv().await;
    let mut command = Command::new(venv.join("bin/python"));
    command.args(args).env("PATH", path_with(&venv.join("bin")));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("the virtualenv's python runs")
}

/// The OpenAPI tools' virtualenv (see [`tool_virtualenv`]).
async fn virtualenv() -> PathBuf {
    static READY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/requirements.txt");
    READY.get_or_init(|| tool_virtualenv("openapi", REQUIREMENTS)).await.clone()
}

/// `target/tmp/<name>-venv-<hash of the pins>` with the pinned PyPI tools of `requirements`,
/// made on first use (a half-made one is made again). Callers keep it in a `OnceCell` so tests
/// running at once wait for the one that installs.
pub(crate) async fn tool_virtualenv(name: &str, requirements: &str) -> PathBuf {
    let pins = std::fs::read(requirements).unwrap();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-venv-{:016x}", fnv(&pins)));
    if venv.join("installed").exists() {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().await;
    let made = made.expect("python3 runs (the tool tests need Python 3.9 or later)");
    assert_succeeded("python3 -m venv", &made);
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r", requirements])
        .output()
        .await
        .unwrap();
    assert_succeeded(&format!("pip install -r {requirements}"), &installed);
    std::fs::write(venv.join("installed"), b"").unwrap();
    venv
}

pub(crate) fn path_with(bin: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", bin.display())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

pub(crate) fn assert_succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
