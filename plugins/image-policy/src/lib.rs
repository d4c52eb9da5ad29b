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

/// Whether two `host[:port]` registries are the same: hosts compared without regard to ASCII
/// case, ports exactly (no port is not the same as any port).
fn same_registry(a: &str, b: &str) -> bool {
    let (a_host, a_port) = split_port(a.trim());
    let (b_host, b_port) = split_port(b.trim());
    a_host.eq_ignore_ascii_case(b_host) && a_port == b_port
}

/// `host:port` into host and port; an IPv6 literal keeps its brackets (`[::1]:5000`).
fn split_port(registry: &str) -> (&str, Option<&str>) {
    let host_end = if registry.starts_with('[') {
        registry.find(']').map_or(registry.len(), |i| i + 1)
    } else {
        registry.find(':').unwrap_or(registry.len())
    };
    let (host, rest) = registry.split_at(host_end);
    (host, rest.strip_prefix(':'))
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

    #[test]
    fn ports_must_match_exactly() {
        let allow = list(&["localhost:5000", "[::1]:5000"]);
        assert!(matches!(decide("localhost:5000", &allow), Decision::Allow));
        assert!(matches!(decide("LOCALHOST:5000", &allow), Decision::Allow));
        assert!(matches!(decide("[::1]:5000", &allow), Decision::Allow));
        assert!(matches!(decide("localhost", &allow), Decision::Deny(_)));
        assert!(matches!(decide("localhost:5001", &allow), Decision::Deny(_)));
        assert!(matches!(decide("[::1]", &allow), Decision::Deny(_)));
        assert!(matches!(decide("docker.io", &list(&["docker.io:443"])), Decision::Deny(_)));
    }

    #[test]
    fn a_prefix_or_suffix_is_not_a_match() {
        let allow = list(&["ghcr.io"]);
        assert!(matches!(decide("ghcr.io.evil.io", &allow), Decision::Deny(_)));
        assert!(matches!(decide("evil-ghcr.io", &allow), Decision::Deny(_)));
    }
}
