//! Example image policy: refuse images that are not pinned.
//!
//! kubeop asks the `image-policy` plugin about every image an app is created or updated with.
//! This one applies the platform's image allowlist, like the built-in policy, and also refuses
//! images that would pull whatever `latest` points to today:
//!
//! - `nginx:latest` (tagged `latest`), and
//! - `nginx` (neither a tag nor a digest, which pulls `latest` too).
//!
//! `nginx:1.27` and `nginx@sha256:…` are fine.
//!
//! To write your own policy, copy this crate, change `decide`, and build it:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! The component is `target/wasm32-wasip2/release/deny_latest.wasm`.
//!
//! Plugins are pure functions of their request: the host gives them no clock, randomness,
//! environment, files or network, and stops a call that runs too long or uses too much memory.

// Generate the Rust bindings for the `image-policy` world of kubeop's WIT package. This gives us:
// - `Guest`, the trait our plugin implements (one method per export: `check_image`);
// - `ImageRequest` and `Decision`, the types of that export;
// - `kubeop::plugin::host::log`, the one function the host offers us.
// `path` is relative to this crate's Cargo.toml; point it at your copy of `wit/`.
wit_bindgen::generate!({
    world: "image-policy",
    path: "../../../wit",
});

use kubeop::plugin::host::{Level, log};

/// The plugin. It has no state: each call gets everything it needs in its request.
struct DenyLatest;

impl Guest for DenyLatest {
    fn check_image(request: ImageRequest) -> Decision {
        let decision = decide(&request);
        // Logging is allowed but should be rare: the host keeps at most 64 lines per call.
        if let Decision::Deny(reason) = &decision {
            log(Level::Info, &format!("denied {}: {reason}", request.image));
        }
        decision
    }
}

// Export `DenyLatest` as the component's implementation of the world.
export!(DenyLatest);

/// The policy itself, kept apart from the bindings so that `cargo test` can run it natively.
fn decide(request: &ImageRequest) -> Decision {
    let image = &request.image;
    let reference = &request.reference;
    let allowlist = &request.policy.image_allowlist;

    // 1. The platform allowlist: empty means every registry is allowed.
    if !allowlist.is_empty() && !allowlist.iter().any(|entry| same_registry(&reference.registry, entry)) {
        return Decision::Deny(format!(
            "registry {} is not in the image allowlist ({})",
            reference.registry,
            allowlist.join(", ")
        ));
    }

    // 2. The image must be pinned. `reference` is already parsed for us: `tag` and `digest` are
    //    exactly as the user wrote them, `None` when absent. Tags are case-sensitive.
    match (reference.tag.as_deref(), reference.digest.as_deref()) {
        (Some("latest"), _) => Decision::Deny(format!(
            "image {image} uses the tag latest, which changes under you: pin a version tag or a digest"
        )),
        (None, None) => Decision::Deny(format!(
            "image {image} has neither a tag nor a digest, so it pulls latest: pin a version tag or a digest"
        )),
        _ => Decision::Allow,
    }
}

/// Whether a registry (`host` or `host:port`) matches an allowlist entry: the host without
/// regard to case, the port exactly (`localhost:5000` is not `localhost`).
fn same_registry(registry: &str, entry: &str) -> bool {
    let (host, port) = split_port(registry);
    let (entry_host, entry_port) = split_port(entry.trim());
    host.eq_ignore_ascii_case(entry_host) && port == entry_port
}

/// Splits `host:port`; an IPv6 literal keeps its brackets (`[::1]:5000`).
fn split_port(registry: &str) -> (&str, Option<&str>) {
    let host_end = if registry.starts_with('[') {
        registry.find(']').map_or(registry.len(), |i| i + 1)
    } else {
        registry.find(':').unwrap_or(registry.len())
    };
    let (host, rest) = registry.split_at(host_end);
    (host, rest.strip_prefix(':'))
}

// Unit tests run natively: `cargo test` (without `--target`). They may not call `log`, which
// exists only inside the host.
#[cfg(test)]
mod tests {
    use super::*;
    use kubeop::plugin::types::{ImageReference, PlatformPolicy};

    fn request(
        image: &str,
        registry: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        allowlist: &[&str],
    ) -> ImageRequest {
        ImageRequest {
            image: image.into(),
            reference: ImageReference {
                registry: registry.into(),
                repository: "library/nginx".into(),
                tag: tag.map(Into::into),
                digest: digest.map(Into::into),
            },
            tenant_id: "t_1".into(),
            project_id: "p_1".into(),
            policy: PlatformPolicy {
                image_allowlist: allowlist.iter().map(|e| e.to_string()).collect(),
                egress_baseline: vec![],
                quota_max_requests_cpu: None,
                quota_max_requests_memory: None,
            },
        }
    }

    #[test]
    fn pinned_images_are_allowed() {
        assert!(matches!(
            decide(&request("nginx:1.27", "docker.io", Some("1.27"), None, &[])),
            Decision::Allow
        ));
        let digest = Some("sha256:0123");
        assert!(matches!(
            decide(&request("nginx@sha256:0123", "docker.io", None, digest, &[])),
            Decision::Allow
        ));
    }

    #[test]
    fn latest_and_untagged_are_denied() {
        let Decision::Deny(reason) = decide(&request("nginx:latest", "docker.io", Some("latest"), None, &[]))
        else {
            panic!("nginx:latest allowed");
        };
        assert!(reason.contains("pin a version tag or a digest"), "{reason}");
        let Decision::Deny(reason) = decide(&request("nginx", "docker.io", None, None, &[])) else {
            panic!("nginx allowed");
        };
        assert!(reason.contains("neither a tag nor a digest"), "{reason}");
    }

    #[test]
    fn the_allowlist_applies_first() {
        let Decision::Deny(reason) =
            decide(&request("evil.io/x:1", "evil.io", Some("1"), None, &["docker.io", "ghcr.io"]))
        else {
            panic!("evil.io allowed");
        };
        assert_eq!(reason, "registry evil.io is not in the image allowlist (docker.io, ghcr.io)");
        let allowed = request("nginx:1.27", "docker.io", Some("1.27"), None, &["docker.io"]);
        assert!(matches!(decide(&allowed), Decision::Allow));
    }
}
