//! The `egress-baseline` rule: a NetworkPolicy may open egress to IP blocks inside the
//! platform's egress baseline only. An egress rule without peers (`to` absent or empty) opens
//! every address, so it is denied too.

use crate::cidr::Cidr;
use crate::finding::{FieldPath, Findings, Rule};
use serde_json::Value;

pub fn check_egress(object: &Value, baseline: &[String], findings: &mut Findings) {
    // An unparsable baseline entry contains nothing: it cannot widen what is allowed.
    let networks: Vec<Cidr> = baseline.iter().filter_map(|entry| Cidr::parse(entry)).collect();
    let egress_path = FieldPath::root().fields(&["spec", "egress"]);
    let rules =
        object.pointer("/spec/egress").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let peers = rule.get("to").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if peers.is_empty() {
            findings.add(
                Rule::EgressBaseline,
                egress_path.index(i),
                "a rule without `to` opens egress to every address; name its peers (pods, namespaces, or ipBlocks inside the egress baseline)",
            );
        }
        for (j, peer) in peers.iter().enumerate() {
            let Some(cidr) = peer.pointer("/ipBlock/cidr").and_then(Value::as_str) else { continue };
            let path = egress_path.index(i).field("to").index(j).fields(&["ipBlock", "cidr"]);
            if let Some(reason) = outside_baseline(cidr, &networks, baseline) {
                findings.add(Rule::EgressBaseline, path, reason);
            }
        }
    }
}

/// Why `cidr` may not be opened, or `None` when it lies inside the baseline.
fn outside_baseline(cidr: &str, networks: &[Cidr], baseline: &[String]) -> Option<String> {
    let Some(parsed) = Cidr::parse(cidr) else {
        return Some(format!("\"{cidr}\" is not a CIDR (address/prefix)"));
    };
    if baseline.is_empty() {
        return Some(format!("{cidr} is not allowed: the egress baseline is empty, so no ipBlock egress is"));
    }
    let inside = networks.iter().any(|network| network.contains(&parsed));
    (!inside).then(|| format!("{cidr} is not inside the egress baseline ({})", baseline.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn findings(egress: Value, baseline: &[&str]) -> Vec<String> {
        let baseline: Vec<String> = baseline.iter().map(|entry| entry.to_string()).collect();
        let mut findings = Findings::default();
        check_egress(&json!({"spec": {"egress": egress}}), &baseline, &mut findings);
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn blocks_inside_the_baseline_are_allowed() {
        let egress = json!([
            {"to": [{"ipBlock": {"cidr": "10.42.0.0/16", "except": ["10.42.1.0/24"]}}]},
            {"to": [{"podSelector": {}}, {"ipBlock": {"cidr": "fd00:1::/64"}}], "ports": [{"port": 53, "protocol": "UDP"}]},
        ]);
        assert_eq!(findings(egress, &["10.0.0.0/8", "fd00::/8"]), Vec::<String>::new());
    }

    #[test]
    fn blocks_outside_the_baseline_are_denied() {
        let egress = json!([
            {"to": [{"ipBlock": {"cidr": "10.42.0.0/16"}}]},
            {"to": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]},
        ]);
        assert_eq!(
            findings(egress, &["10.0.0.0/8", "192.168.0.0/16"]),
            [
                "[egress-baseline] spec.egress[1].to[1].ipBlock.cidr: 0.0.0.0/0 is not inside the egress baseline (10.0.0.0/8, 192.168.0.0/16)"
            ]
        );
    }

    #[test]
    fn a_rule_without_peers_is_denied() {
        let egress = json!([{"to": [{"podSelector": {}}]}, {"ports": [{"port": 443}]}, {"to": []}]);
        let found = findings(egress, &["10.0.0.0/8"]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("[egress-baseline] spec.egress[1]: a rule without `to`"), "{found:?}");
        assert!(found[1].starts_with("[egress-baseline] spec.egress[2]: "), "{found:?}");
    }

    #[test]
    fn an_empty_baseline_allows_no_ip_block() {
        let egress = json!([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]);
        assert_eq!(
            findings(egress, &[]),
            [
                "[egress-baseline] spec.egress[0].to[0].ipBlock.cidr: 10.0.0.0/8 is not allowed: the egress baseline is empty, so no ipBlock egress is"
            ]
        );
        assert_eq!(findings(json!([{"to": [{"podSelector": {}}]}]), &[]), Vec::<String>::new());
    }

    #[test]
    fn an_unparsable_block_is_denied() {
        let egress = json!([{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]);
        assert_eq!(
            findings(egress, &["0.0.0.0/0"]),
            [
                "[egress-baseline] spec.egress[0].to[0].ipBlock.cidr: \"10.0.0.0/33\" is not a CIDR (address/prefix)"
            ]
        );
    }
}
