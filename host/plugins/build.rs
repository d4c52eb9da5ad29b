//! Builds the built-in plugins (`plugins/`, for wasm32-wasip2) into `OUT_DIR`, where this crate
//! embeds them. Reruns only when the guests or the WIT package change.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The components embedded as the slots' defaults.
const BUILTINS: &[&str] = &["image_policy.wasm", "pricing.wasm", "admission.wasm"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest_dir.join("../../plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // One target directory for every build of the guests, beside the workspace's own.
    let target_dir = manifest_dir.join("../../target/wasm-plugins");
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
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../../wit").display());
    for watched in guest_sources(&plugins) {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
}

/// What the guests are built from: the workspace's manifest and lock, and each crate's
/// manifest, `src/` and `wit/`. Not the whole directory: the JavaScript and Python examples
/// beside them grow `node_modules/`, `.venv/` and built components when an operator runs their
/// `build.sh`, which must not rebuild this crate.
fn guest_sources(plugins: &std::path::Path) -> Vec<PathBuf> {
    let mut watched = vec![plugins.join("Cargo.toml"), plugins.join("Cargo.lock")];
    let mut dirs = vec![plugins.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name();
            if name == "node_modules" || name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.join("Cargo.toml").is_file() {
                watched.push(path.join("Cargo.toml"));
                watched.extend(["src", "wit"].map(|sub| path.join(sub)).into_iter().filter(|p| p.exists()));
            } else {
                dirs.push(path);
            }
        }
    }
    watched
}
