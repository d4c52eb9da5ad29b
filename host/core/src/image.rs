//! Container image references, parsed the way Docker and Kubernetes resolve them.

use oci_spec::distribution::Reference;

use super::Invalid;

/// An image reference as the user wrote it, with its normalised parts
/// (`nginx` → registry `docker.io`, repository `library/nginx`, tag `latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    written: String,
    reference: Reference,
    tag_written: bool,
}

impl ImageRef {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = |why: &dyn std::fmt::Display| {
            Invalid(format!("image `{raw}` is not a valid image reference: {why}"))
        };
        if raw.trim() != raw || raw.is_empty() {
            return Err(invalid(&"it is empty or has surrounding spaces"));
        }
        let reference: Reference = raw.parse().map_err(|e| invalid(&e))?;
        // The tag is whatever follows a `:` in the last path segment, before any digest.
        let name = raw.split('@').next().unwrap_or(raw);
        let tag_written = name.rsplit('/').next().is_some_and(|last| last.contains(':'));
        Ok(Self { written: raw.to_owned(), reference, tag_written })
    }

    /// The reference exactly as given.
    pub fn as_written(&self) -> &str {
        &self.written
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository path within the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag as written; `None` when the reference names no tag (which pulls `latest`).
    pub fn tag(&self) -> Option<&str> {
        if self.tag_written { self.reference.tag() } else { None }
    }

    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The fully qualified form, e.g. `docker.io/library/nginx:latest`.
    pub fn canonical(&self) -> String {
        self.reference.whole()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let nginx = ImageRef::parse("nginx").unwrap();
        assert_eq!((nginx.registry(), nginx.repository(), nginx.tag()), ("docker.io", "library/nginx", None));
        assert_eq!(nginx.canonical(), "docker.io/library/nginx:latest");
        assert_eq!(ImageRef::parse("library/nginx").unwrap().registry(), "docker.io");
        let local = ImageRef::parse("localhost:5000/team/app:v2").unwrap();
        assert_eq!(
            (local.registry(), local.repository(), local.tag()),
            ("localhost:5000", "team/app", Some("v2"))
        );
        let pinned = ImageRef::parse(
            "ghcr.io/acme/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(pinned.registry(), "ghcr.io");
        assert_eq!(pinned.tag(), None);
        assert!(pinned.digest().unwrap().starts_with("sha256:"));
        assert_eq!(ImageRef::parse("docker.io/library/nginx:1.25").unwrap().tag(), Some("1.25"));
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in ["", " nginx", "NGINX", "nginx:", "a:b:c", "ghcr.io/x@sha256:short", "web app"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
