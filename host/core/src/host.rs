//! The public host name of an app (its ingress rule).

use serde::Serialize;

use super::{Invalid, name::check_label};

#[cfg(feature = "sqlx")]
crate::sqlx_impls::text_column!(Hostname);

const MAX_HOST: usize = 253;

/// A DNS name (a DNS-1123 subdomain), stored in lower case because DNS ignores case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl utoipa::PartialSchema for Hostname {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A DNS name: dot-separated DNS-1123 labels (either case; stored in lower case), \
                 at most 253 characters, an optional trailing dot.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_HOST + 1))
            .pattern(Some(
                "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$",
            ))
            .examples([serde_json::json!("web.local")])
            .into()
    }
}

impl utoipa::ToSchema for Hostname {}

impl Hostname {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        if host.is_empty() {
            return Err(Invalid::new("host is empty"));
        }
        if host.len() > MAX_HOST {
            return Err(Invalid(format!(
                "host is {} characters long; at most {MAX_HOST} are allowed",
                host.len()
            )));
        }
        for label in host.split('.') {
            check_label(label)
                .map_err(|why| Invalid(format!("host `{raw}` is not a DNS name: `{label}` {why}")))?;
        }
        Ok(Self(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_names_in_any_case() {
        assert_eq!(Hostname::parse("web.local").unwrap().as_str(), "web.local");
        assert_eq!(Hostname::parse("Shop.Example.COM.").unwrap().as_str(), "shop.example.com");
        assert!(Hostname::parse("localhost").is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_dns_name() {
        for bad in ["", ".", "a..b", "-a.com", "a-.com", "a_b.com", "web local", "*.example.com", "http://x"]
        {
            assert!(Hostname::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert!(Hostname::parse(&long).unwrap_err().to_string().contains("at most 253"));
    }
}
