//! Image references, split the way Docker resolves them.

use registry_match::docker_hub;

/// An image reference as far as admission cares.
#[derive(Debug, PartialEq)]
pub struct Image<'a> {
    pub text: &'a str,
    /// `host` or `host:port`; `docker.io` when the reference names no registry.
    pub registry: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> Image<'a> {
    pub fn parse(text: &'a str) -> Self {
        let text = text.trim();
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        // The first path component is a registry when it looks like a host: it has a `.` or a
        // `:` (a port), or is `localhost`. Otherwise the image is on Docker Hub.
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
            _ => ("docker.io", name),
        };
        let registry = docker_hub(registry);
        // The tag follows the last `:` of the last path component (a registry's port is in the
        // first component, which `path` no longer has).
        let last = path.rsplit('/').next().unwrap_or(path);
        let tag = last.rsplit_once(':').map(|(_, tag)| tag);
        Image { text, registry, tag, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_parsing_follows_docker() {
        let parse = |s| {
            let i = Image::parse(s);
            (i.registry, i.tag, i.digest)
        };
        assert_eq!(parse("nginx"), ("docker.io", None, None));
        assert_eq!(parse("nginx:1.27"), ("docker.io", Some("1.27"), None));
        assert_eq!(parse("acme/api:v2"), ("docker.io", Some("v2"), None));
        assert_eq!(parse("ghcr.io/acme/api"), ("ghcr.io", None, None));
        assert_eq!(parse("localhost/api:1"), ("localhost", Some("1"), None));
        assert_eq!(parse("localhost:5000/api"), ("localhost:5000", None, None));
        assert_eq!(parse("registry:5000/api:3"), ("registry:5000", Some("3"), None));
        assert_eq!(parse("index.docker.io/library/nginx:latest"), ("docker.io", Some("latest"), None));
        assert_eq!(parse("ghcr.io/a/b@sha256:abc"), ("ghcr.io", None, Some("sha256:abc")));
        assert_eq!(parse("ghcr.io/a/b:1@sha256:abc"), ("ghcr.io", Some("1"), Some("sha256:abc")));
    }
}
