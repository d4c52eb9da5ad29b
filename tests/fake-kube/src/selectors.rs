//! `labelSelector` and `fieldSelector` query parameters, parsed once per request.

use serde_json::{Map, Value};

use crate::error::{ApiError, Result};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector: every requirement must hold (comma means AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Splits on commas outside parentheses, so `a in (x,y),b` is two terms.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

impl LabelSelector {
    pub fn parse(selector: &str) -> Result<LabelSelector> {
        let bad = |term: &str| ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if let Some(open) = term.find('(') {
                let values = term[open + 1..].strip_suffix(')').ok_or_else(|| bad(term))?;
                let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
                if values.iter().any(|v| !valid_value(v)) {
                    return Err(bad(term));
                }
                match term[..open].split_whitespace().collect::<Vec<_>>()[..] {
                    [key, "in"] => Requirement::In(key.to_owned(), values),
                    [key, "notin"] => Requirement::NotIn(key.to_owned(), values),
                    _ => return Err(bad(term)),
                }
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else {
                Requirement::Exists(term.to_owned())
            };
            let (key, value) = match &requirement {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, v.as_str()),
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k) => (k, ""),
            };
            if !valid_key(key) || !valid_value(value) {
                return Err(bad(term));
            }
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let empty = Map::new();
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object).unwrap_or(&empty);
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => label(k) == Some(v),
            Requirement::NotEquals(k, v) => label(k) != Some(v),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    /// JSON pointer of the field, e.g. `/metadata/name`.
    pointer: &'static str,
    value: String,
    equal: bool,
}

/// A parsed field selector: only `metadata.name` and `metadata.namespace`, like most resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    pub fn parse(selector: &str) -> Result<FieldSelector> {
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let pointer = match field.trim() {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                other => {
                    return Err(ApiError::bad_request(format!("field label not supported: {other}")));
                }
            };
            requirements.push(FieldRequirement { pointer, value: value.trim().to_owned(), equal });
        }
        Ok(FieldSelector(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = object.pointer(r.pointer).and_then(Value::as_str).unwrap_or_default();
            (actual == r.value) == r.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labelled(labels: Value) -> Value {
        json!({ "metadata": { "name": "x", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn equality_and_set_based_requirements_are_anded() {
        let object = labelled(json!({ "app": "web", "tier": "front" }));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("tier in (back, front)", true),
            ("tier in (back),app", false),
            ("tier notin (back)", true),
            ("missing notin (back)", true),
            ("app", true),
            ("!app", false),
            ("!missing,app in (web)", true),
            ("", true),
        ];
        for (selector, expected) in cases {
            let parsed = LabelSelector::parse(selector).expect(selector);
            assert_eq!(parsed.matches(&object), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for selector in ["a in (x", "a=b c", "a in x", "=b", "a=(b)"] {
            let error = LabelSelector::parse(selector).expect_err(selector);
            assert_eq!(error.code, 400, "{selector}");
        }
    }

    #[test]
    fn field_selectors_on_name_and_namespace() {
        let object = labelled(json!({}));
        assert!(FieldSelector::parse("metadata.name=x").unwrap().matches(&object));
        assert!(FieldSelector::parse("metadata.name==x,metadata.namespace=ns").unwrap().matches(&object));
        assert!(!FieldSelector::parse("metadata.namespace!=ns").unwrap().matches(&object));
        assert_eq!(FieldSelector::parse("spec.nodeName=a").unwrap_err().code, 400);
        assert_eq!(FieldSelector::parse("metadata.name").unwrap_err().code, 400);
    }
}
