//! Stamps the binary with the commit and time it was built from (`/version`). Only this small
//! crate reruns when the checked-out commit changes; the libraries it links are not rebuilt.

use std::process::Command;

fn main() {
    stamp_version();
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

    // Re-stamp when the checked-out commit changes (HEAD moves to another branch, or the branch
    // to another commit), not on every `git add`: the index is not watched, so `-dirty` tells
    // the state of the tree when this crate was last built.
    // `--git-path` resolves each file where it lives, in a linked worktree too.
    let head_ref = git(&["symbolic-ref", "-q", "HEAD"]);
    for file in ["HEAD", "packed-refs"].into_iter().chain(head_ref.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
