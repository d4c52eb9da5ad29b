//! List pagination: `?limit=` and an opaque `?after=` cursor.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::Invalid;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// Where a list page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    /// Only items older than this id (lists are newest first).
    pub after: Option<String>,
}

impl Page {
    pub fn parse(limit: Option<&str>, after: Option<&str>) -> Result<Self, Invalid> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Invalid(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}, not `{raw}`"
                    )));
                }
            },
        };
        let after = after.map(Cursor::decode).transpose()?.map(|cursor| cursor.0);
        Ok(Self { limit, after })
    }

    /// The query asks for one row more than the page so it can tell whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// The position after the last item of a page. Clients treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn after(last_id: &str) -> Self {
        Self(last_id.to_owned())
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    fn decode(raw: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid(format!("after `{raw}` is not a cursor this server issued"));
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let id = String::from_utf8(bytes).map_err(|_| invalid())?;
        // Every id is ASCII `x_` + ULID; anything else did not come from us.
        if id.len() != 28 || !id.is_ascii() || id.as_bytes()[1] != b'_' {
            return Err(invalid());
        }
        Ok(Self(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Page::parse(None, None).unwrap(), Page { limit: 100, after: None });
        assert_eq!(Page::parse(Some("1000"), None).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(Page::parse(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_round_trips_and_refuses_forgeries() {
        let id = TenantId::generate();
        let encoded = Cursor::after(id.as_str()).encode();
        assert_eq!(Page::parse(None, Some(&encoded)).unwrap().after.as_deref(), Some(id.as_str()));
        for bad in ["!!", "dGVzdA", ""] {
            assert!(Page::parse(None, Some(bad)).is_err(), "{bad}");
        }
    }
}
