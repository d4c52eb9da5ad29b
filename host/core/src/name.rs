//! Names of tenants, projects and apps. They end up as parts of Kubernetes object names, so they
//! are DNS-1123 labels, and a project's namespace `kubeop-<tenant>-<project>` must be a label too.

use serde::Serialize;

use super::Invalid;

#[cfg(feature = "sqlx")]
crate::sqlx_impls::text_column!(Name, Namespace);

const MAX_LABEL: usize = 63;
const NAMESPACE_PREFIX: &str = "kubeop-";

/// A DNS-1123 label: 1–63 characters of `a-z`, `0-9` and `-`, starting and ending alphanumeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// A DNS-1123 label as the OpenAPI document describes it; `check_label` accepts exactly these.
pub(crate) const LABEL_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A DNS-1123 label: 1–63 characters of `a-z`, `0-9` and `-`, starting and ending \
                 with a letter or digit.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_LABEL))
            .pattern(Some(LABEL_PATTERN))
            .examples([serde_json::json!("acme")])
            .into()
    }
}

impl utoipa::ToSchema for Name {}

impl Name {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        check_label(raw).map_err(|why| Invalid(format!("name `{raw}` {why}")))?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one DNS-1123 label and says what is wrong with it.
pub(super) fn check_label(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > MAX_LABEL {
        return Err(format!("is {} characters long; at most {MAX_LABEL} are allowed", raw.len()));
    }
    if let Some(bad) = raw.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        return Err(format!(
            "contains `{bad}`; only lower-case letters, digits and `-` are allowed (a DNS-1123 label)"
        ));
    }
    if raw.starts_with('-') || raw.ends_with('-') {
        return Err("must start and end with a letter or digit (a DNS-1123 label)".into());
    }
    Ok(())
}

/// The Kubernetes namespace of a project, `kubeop-<tenant>-<project>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "kubeop-acme-web")]
pub struct Namespace(String);

impl Namespace {
    pub fn for_project(tenant: &Name, project: &Name) -> Result<Self, Invalid> {
        let namespace = format!("{NAMESPACE_PREFIX}{tenant}-{project}");
        if namespace.len() > MAX_LABEL {
            return Err(Invalid(format!(
                "namespace `{namespace}` would be {} characters long, over the {MAX_LABEL} a \
                 Kubernetes namespace may have; tenant and project names together may have at most {} characters",
                namespace.len(),
                MAX_LABEL - NAMESPACE_PREFIX.len() - 1
            )));
        }
        Ok(Self(namespace))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "acme", "web-main", "0x1", &"a".repeat(63)] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("Acme", "`A`"),
            ("ac_me", "`_`"),
            ("-acme", "start and end"),
            ("acme-", "start and end"),
            ("a.b", "`.`"),
            ("é", "`é`"),
        ];
        for (raw, why) in cases {
            let err = Name::parse(raw).unwrap_err().to_string();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
        assert!(Name::parse(&"a".repeat(64)).unwrap_err().to_string().contains("64 characters"));
    }

    #[test]
    fn namespace_must_fit_a_label() {
        let tenant = Name::parse("acme").unwrap();
        let web = Name::parse("web").unwrap();
        assert_eq!(Namespace::for_project(&tenant, &web).unwrap().as_str(), "kubeop-acme-web");
        // 7 + 4 + 1 + 51 = 63 fits; one more does not.
        let longest = Name::parse(&"p".repeat(51)).unwrap();
        assert_eq!(Namespace::for_project(&tenant, &longest).unwrap().as_str().len(), 63);
        let too_long = Name::parse(&"p".repeat(52)).unwrap();
        let err = Namespace::for_project(&tenant, &too_long).unwrap_err().to_string();
        assert!(err.contains("64 characters"), "{err}");
    }
}
