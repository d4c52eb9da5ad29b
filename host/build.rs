//! Builds the built-in plugins (`plugins/`, for wasm32-wasip2) into `OUT_DIR`, where the
//! binary embeds them, and stamps the binary with the commit and time it was built from.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The components embedded as the slots' defaults.
const BUILTINS: &[&str] = &["image_policy.wasm", "pricing.wasm", "admission.wasm"];

fn main() {
    build_builtin_plugins();
    stamp_version();
}

fn build_builtin_plugins() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest_dir.join("../plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // One target directory for every build of the guests, beside the workspace's own.
    let target_dir = manifest_dir.join("../target/wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Every guest, the examples and the tests' hostile plugins too: one build, one lock.
        .arg("--workspace")
        .stdout(Stdio::null());
    // The outer build's flags and wrappers are for the host target, not for the guests.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(variable);
    }
    let status = command.status().expect("running cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins in plugins/ failed. If the wasm32-wasip2 target is \
             missing, run `rustup toolchain install` (it reads rust-toolchain.toml)."
        );
    }
    for file in BUILTINS {
        let built = target_dir.join("wasm32-wasip2/release").join(file);
        std::fs::copy(&built, out_dir.join(file))
            .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    }
    for watched in ["../plugins", "../wit"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(watched).display());
    }
}

fn stamp_version() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(commit)
            if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) =>
        {
            format!("{commit}-dirty")
        }
        Some(commit) => commit,
        None => "unknown".to_owned(),
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KUBEOP_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KUBEOP_BUILD_DATE={date}");

    // Re-stamp when the checked-out commit, the index or the sources change.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        for file in ["HEAD", "index", "packed-refs"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(file).display());
        }
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(head_ref).display());
        }
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../config");
    println!("cargo:rerun-if-changed=../migrations");
}
