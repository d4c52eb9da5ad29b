//! kubeop's built-in image policy (the `image-policy` slot's default).
//!
//! An image is allowed when the platform's image allowlist is empty, or when its registry is one
//! of the allowlist's entries: the host compared without regard to case, the port exactly
//! (`localhost:5000` is not `localhost`).

wit_bindgen::generate!({
    world: "image-policy",
    path: "../../wit",
});

use kubeop::plugin::host::{Level, log};
use registry_match::same_registry;

struct ImagePolicy;

impl Guest for ImagePolicy {
    fn check_image(request: ImageRequest) -> Decision {
        let decision = decide(&request.reference.registry, &request.policy.image_allowlist);
        if let Decision::Deny(reason) = &decision {
            log(Level::Debug, &format!("denied {}: {reason}", request.image));
        }
        decision
    }
}

export!(ImagePolicy);

/// The decision for an image from `registry` under `allowlist`.
fn decide(registry: &str, allowlist: &[String]) -> Decision {
    if allowlist.is_empty() || allowlist.iter().any(|entry| same_registry(registry, entry)) {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "registry {registry} is not in the image allowlist ({})",
            allowlist.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn empty_allowlist_allows_everything() {
        assert!(matches!(decide("evil.io", &[]), Decision::Allow));
    }

    #[test]
    fn listed_registry_is_allowed_whatever_the_case() {
        let allow = list(&["docker.io", "ghcr.io"]);
        assert!(matches!(decide("ghcr.io", &allow), Decision::Allow));
        assert!(matches!(decide("GHCR.io", &allow), Decision::Allow));
    }

    #[test]
    fn unlisted_registry_is_denied_with_the_allowlist() {
        let allow = list(&["docker.io", "ghcr.io"]);
        match decide("evil.io", &allow) {
            Decision::Deny(reason) => {
                assert_eq!(reason, "registry evil.io is not in the image allowlist (docker.io, ghcr.io)")
            }
            Decision::Allow => panic!("evil.io allowed"),
        }
    }
}
