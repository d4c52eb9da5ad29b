//! Registry matching shared by the built-in image-policy and admission plugins: an image's
//! registry matches an allowlist entry when the hosts are equal without regard to ASCII case
//! (`index.docker.io` being `docker.io`) and the ports are equal exactly.

/// Whether `registry` (`host` or `host:port`) matches the allowlist `entry`.
pub fn same_registry(registry: &str, entry: &str) -> bool {
    let (host, port) = split_port(registry.trim());
    let (entry_host, entry_port) = split_port(entry.trim());
    docker_hub(host).eq_ignore_ascii_case(docker_hub(entry_host)) && port == entry_port
}

/// A registry host under its usual name: `index.docker.io` is Docker Hub's other name.
pub fn docker_hub(host: &str) -> &str {
    if host.eq_ignore_ascii_case("index.docker.io") { "docker.io" } else { host }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_without_regard_to_case() {
        assert!(same_registry("ghcr.io", "ghcr.io"));
        assert!(same_registry("GHCR.io", "ghcr.io"));
        assert!(same_registry("index.docker.io", "docker.io"));
        assert!(same_registry("docker.io", " Index.Docker.io "));
    }

    #[test]
    fn ports_must_match_exactly() {
        assert!(same_registry("localhost:5000", "localhost:5000"));
        assert!(same_registry("LOCALHOST:5000", "localhost:5000"));
        assert!(same_registry("[::1]:5000", "[::1]:5000"));
        assert!(!same_registry("localhost", "localhost:5000"));
        assert!(!same_registry("localhost:5001", "localhost:5000"));
        assert!(!same_registry("[::1]", "[::1]:5000"));
        assert!(!same_registry("docker.io", "docker.io:443"));
    }

    #[test]
    fn a_prefix_or_suffix_is_not_a_match() {
        assert!(!same_registry("ghcr.io.evil.io", "ghcr.io"));
        assert!(!same_registry("evil-ghcr.io", "ghcr.io"));
    }
}
