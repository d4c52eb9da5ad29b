//! Resource ids: a type prefix and a lower-case ULID (`t_01j…`). ULIDs sort by creation time, so
//! "newest first" is `ORDER BY id DESC` and a page cursor is simply the last id seen.

use std::sync::Mutex;

use serde::Serialize;

/// One generator per process keeps ids created within the same millisecond in creation order.
static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

fn next_ulid() -> ulid::Ulid {
    let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match generator.generate() {
        Ok(id) => id,
        // 2^80 ids in one millisecond: move on to the next millisecond rather than fail.
        Err(overflow) => overflow.commit_overflow_increment(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind} id (expected `{prefix}` followed by a ULID)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

/// What every resource id has: its kind (for messages) and a parser.
pub trait ResourceId: Sized {
    /// `tenant`, `project`, `app`.
    const KIND: &'static str;

    fn parse(value: &str) -> Result<Self, IdError>;
}

/// A ULID as the OpenAPI document describes it: 26 characters of Crockford base32 (no I, L, O or
/// U), in either case, the first at most `7` (128 bits). `parse` accepts exactly these.
macro_rules! ulid_pattern {
    () => {
        "[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}"
    };
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, next_ulid().to_string().to_ascii_lowercase()))
            }

            pub fn parse(value: &str) -> Result<Self, IdError> {
                let invalid = || IdError { kind: $kind, prefix: $prefix, value: value.to_owned() };
                let ulid = value.strip_prefix($prefix).ok_or_else(invalid)?;
                // A ULID is 128 bits, so its first character is at most `7`; the `ulid` crate
                // would take a larger one and drop the overflowing bits.
                if !ulid.starts_with(|c: char| ('0'..='7').contains(&c)) {
                    return Err(invalid());
                }
                // Crockford base32 is case-insensitive; the stored spelling is lower case.
                ulid::Ulid::from_string(&ulid.to_ascii_uppercase()).map_err(|_| invalid())?;
                Ok(Self(value.to_ascii_lowercase()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "sqlx")]
        crate::sqlx_impls::text_column!($name);

        impl ResourceId for $name {
            const KIND: &'static str = $kind;

            fn parse(value: &str) -> Result<Self, IdError> {
                $name::parse(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, " id: `", $prefix, "` and a ULID.")))
                    .pattern(Some(concat!("^", $prefix, ulid_pattern!(), "$")))
                    .examples([serde_json::json!(concat!($prefix, "01jd5x7k3q9m2n4p6r8s0t1v2w"))])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// A tenant: `t_…`.
    TenantId, "t_", "tenant"
);
prefixed_id!(
    /// A project: `p_…`.
    ProjectId, "p_", "project"
);
prefixed_id!(
    /// An app: `a_…`.
    AppId, "a_", "app"
);
prefixed_id!(
    /// A registered Kubernetes cluster: `c_…`.
    ClusterId, "c_", "cluster"
);
prefixed_id!(
    /// A CronJob: `cj_…`.
    CronJobId, "cj_", "cronjob"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_creation() {
        let ids: Vec<TenantId> = (0..1000).map(|_| TenantId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert_eq!(TenantId::parse(ids[0].as_str()).unwrap(), ids[0]);
        assert!(ids[0].as_str().starts_with("t_"));
        assert_eq!(ids[0].as_str().len(), 28);
    }

    #[test]
    fn parse_refuses_wrong_prefix_and_garbage() {
        let project = ProjectId::generate();
        assert!(TenantId::parse(project.as_str()).is_err());
        assert!(TenantId::parse("t_").is_err());
        assert!(TenantId::parse("t_not-a-ulid-at-all-000000000").is_err());
        assert!(TenantId::parse("").is_err());
        let upper = project.as_str().to_ascii_uppercase().replacen("P_", "p_", 1);
        assert_eq!(ProjectId::parse(&upper).unwrap(), project);
    }

    /// The document's pattern and `parse` agree on every character, in the first place and after.
    #[test]
    fn the_documented_pattern_is_what_parse_accepts() {
        let class = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz";
        assert_eq!(
            ulid_pattern!(),
            "[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}",
            "update `class` with the pattern"
        );
        for byte in 0x21u8..0x7f {
            let c = byte as char;
            let later = format!("t_0{}", c.to_string().repeat(25));
            assert_eq!(TenantId::parse(&later).is_ok(), class.contains(c), "`{c}` after the first place");
            let first = format!("t_{c}{}", "0".repeat(25));
            assert_eq!(TenantId::parse(&first).is_ok(), ('0'..='7').contains(&c), "`{c}` in the first place");
        }
        assert!(TenantId::parse(&format!("t_{}", "0".repeat(25))).is_err(), "25 characters");
        assert!(TenantId::parse(&format!("t_{}", "0".repeat(27))).is_err(), "27 characters");
    }
}
