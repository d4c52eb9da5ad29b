//! The `quota-max` rule: a ResourceQuota must cap CPU and memory requests, at most at the
//! platform's maximums.

use crate::finding::{FieldPath, Findings, Rule};
use crate::quantity::Quantity;
use serde_json::{Map, Value};

pub fn check_maximums(
    object: &Value,
    max_cpu: Option<&str>,
    max_memory: Option<&str>,
    findings: &mut Findings,
) {
    let empty = Map::new();
    let hard = match object.pointer("/spec/hard") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(hard)) => hard,
        Some(_) => return,
    };
    let hard_path = FieldPath::root().fields(&["spec", "hard"]);
    // Kubernetes reads the bare name as the older spelling of the requests key.
    for (keys, maximum) in [(["requests.cpu", "cpu"], max_cpu), (["requests.memory", "memory"], max_memory)] {
        let set: Vec<&str> = keys.into_iter().filter(|key| hard.contains_key(*key)).collect();
        if set.is_empty() {
            let reason = format!("a ResourceQuota must cap {} (or {})", keys[0], keys[1]);
            findings.add(Rule::QuotaMax, hard_path.field(keys[0]), reason);
        }
        for key in set {
            if let Some(reason) = over_maximum(&hard[key], maximum) {
                findings.add(Rule::QuotaMax, hard_path.field(key), reason);
            }
        }
    }
}

/// Why `value` is not acceptable under `maximum`, or `None` when it is.
fn over_maximum(value: &Value, maximum: Option<&str>) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => return Some(format!("{other} is not a Kubernetes quantity")),
    };
    let quantity = match Quantity::parse(&text) {
        Ok(quantity) => quantity,
        Err(err) => return Some(format!("\"{text}\" {err}")),
    };
    let maximum = maximum?;
    match Quantity::parse(maximum) {
        Ok(max) if quantity > max => Some(format!("{text} is above the platform's maximum of {maximum}")),
        Ok(_) => None,
        // The policy is the operator's; refusing is safer than letting any quota through.
        Err(err) => {
            Some(format!("the platform's maximum \"{maximum}\" {err}; the platform operator must fix it"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn findings(hard: Value, max_cpu: Option<&str>, max_memory: Option<&str>) -> Vec<String> {
        let mut findings = Findings::default();
        check_maximums(&json!({"spec": {"hard": hard}}), max_cpu, max_memory, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn quotas_within_the_maximums_are_allowed() {
        let hard = json!({"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"});
        assert_eq!(findings(hard, Some("4000m"), Some("8Gi")), Vec::<String>::new());
        let bare = json!({"cpu": "500m", "memory": "512Mi"});
        assert_eq!(findings(bare, Some("1"), Some("1Gi")), Vec::<String>::new());
        let no_maximums = json!({"requests.cpu": "1000", "requests.memory": "1Ei"});
        assert_eq!(findings(no_maximums, None, None), Vec::<String>::new());
    }

    #[test]
    fn quotas_above_the_maximums_are_denied() {
        let hard = json!({"requests.cpu": "4001m", "memory": "8589934593"});
        assert_eq!(
            findings(hard, Some("4"), Some("8Gi")),
            [
                "[quota-max] spec.hard[requests.cpu]: 4001m is above the platform's maximum of 4",
                "[quota-max] spec.hard.memory: 8589934593 is above the platform's maximum of 8Gi",
            ]
        );
    }

    #[test]
    fn both_spellings_are_checked_when_both_are_set() {
        let hard = json!({"requests.cpu": "2", "cpu": "16", "requests.memory": "1Gi"});
        assert_eq!(
            findings(hard, Some("4"), None),
            ["[quota-max] spec.hard.cpu: 16 is above the platform's maximum of 4"]
        );
    }

    #[test]
    fn quotas_must_cap_cpu_and_memory() {
        assert_eq!(
            findings(json!({"pods": "10"}), None, None),
            [
                "[quota-max] spec.hard[requests.cpu]: a ResourceQuota must cap requests.cpu (or cpu)",
                "[quota-max] spec.hard[requests.memory]: a ResourceQuota must cap requests.memory (or memory)",
            ]
        );
        let mut none = Findings::default();
        check_maximums(&json!({"spec": {}}), None, None, &mut none);
        assert_eq!(none.into_vec().len(), 2);
    }

    #[test]
    fn unparsable_quantities_are_denied() {
        assert_eq!(
            findings(json!({"requests.cpu": "lots", "requests.memory": true}), Some("4"), None),
            [
                "[quota-max] spec.hard[requests.cpu]: \"lots\" is not a Kubernetes quantity",
                "[quota-max] spec.hard[requests.memory]: true is not a Kubernetes quantity",
            ]
        );
        assert_eq!(
            findings(json!({"requests.cpu": "1", "requests.memory": "1Gi"}), Some("four"), None),
            [
                "[quota-max] spec.hard[requests.cpu]: the platform's maximum \"four\" is not a Kubernetes quantity; the platform operator must fix it"
            ]
        );
    }

    #[test]
    fn a_hard_field_of_another_shape_is_left_to_kubernetes() {
        assert_eq!(findings(json!("4 cpus"), Some("4"), Some("8Gi")), Vec::<String>::new());
    }
}
