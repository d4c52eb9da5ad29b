//! The hosts Ingresses and HTTPRoutes serve: the `allowed-hosts` rule (only the platform's
//! hosts) and the `host-collision` rule (never a host another tenant or the platform serves).

use crate::finding::{FieldPath, Findings, Rule};
use crate::hosts::{allowed_by, overlap};
use crate::kubeop::plugin::types::HostClaim;
use serde_json::Value;

/// A host an object serves, and where the object says so.
#[derive(Debug, PartialEq)]
pub struct Served<'a> {
    pub path: FieldPath,
    pub host: Host<'a>,
}

#[derive(Debug, PartialEq)]
pub enum Host<'a> {
    Named(&'a str),
    /// Every host the gateway or ingress controller receives; says what does that.
    Every(&'static str),
}

/// `spec.rules[i].host`, `spec.tls[i].hosts[j]` and a default backend (which serves every host).
pub fn ingress_hosts(object: &Value) -> Vec<Served<'_>> {
    let Some(spec) = object.get("spec").filter(|spec| spec.is_object()) else { return vec![] };
    let spec_path = FieldPath::root().field("spec");
    let mut served = Vec::new();
    for (i, rule) in array(spec.get("rules")).iter().enumerate() {
        let path = spec_path.field("rules").index(i).field("host");
        let host = match rule.get("host").and_then(Value::as_str).map(str::trim) {
            Some(host) if !host.is_empty() => Host::Named(host),
            _ => Host::Every("an Ingress rule without a host"),
        };
        served.push(Served { path, host });
    }
    for (i, tls) in array(spec.get("tls")).iter().enumerate() {
        for (j, host) in array(tls.get("hosts")).iter().enumerate() {
            let Some(host) = host.as_str().map(str::trim).filter(|host| !host.is_empty()) else { continue };
            served.push(Served {
                path: spec_path.field("tls").index(i).field("hosts").index(j),
                host: Host::Named(host),
            });
        }
    }
    if spec.get("defaultBackend").is_some_and(|backend| !backend.is_null()) {
        served.push(Served {
            path: spec_path.field("defaultBackend"),
            host: Host::Every("an Ingress default backend"),
        });
    }
    served
}

/// `spec.hostnames[i]`; none at all means every host of the parent gateways' listeners.
pub fn http_route_hosts(object: &Value) -> Vec<Served<'_>> {
    let Some(spec) = object.get("spec").filter(|spec| spec.is_object()) else { return vec![] };
    let path = FieldPath::root().fields(&["spec", "hostnames"]);
    let hostnames = match spec.get("hostnames") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(hostnames)) => hostnames.as_slice(),
        Some(_) => return vec![],
    };
    if hostnames.is_empty() {
        return vec![Served { path, host: Host::Every("an HTTPRoute without hostnames") }];
    }
    let named = hostnames.iter().enumerate().filter_map(|(i, host)| Some((i, host.as_str()?.trim())));
    named.map(|(i, host)| Served { path: path.index(i), host: Host::Named(host) }).collect()
}

pub fn check_allowed_hosts(served: &[Served], allowed: &[String], findings: &mut Findings) {
    if allowed.is_empty() {
        return;
    }
    let list = allowed.join(", ");
    for Served { path, host } in served {
        let reason = match host {
            Host::Named(host) if allowed.iter().any(|pattern| allowed_by(host, pattern)) => continue,
            Host::Named(host) => format!("host {host} is not in the allowed hosts ({list})"),
            Host::Every(what) => format!("{what} serves every host; name one of the allowed hosts ({list})"),
        };
        findings.add(Rule::AllowedHosts, path.clone(), reason);
    }
}

/// A claim of the same tenant is the tenant's own business; any other, including one outside
/// kubeop's namespaces (no tenant), is a collision. The reason names neither the other
/// tenant nor its namespace.
pub fn check_collisions(
    served: &[Served],
    claims: &[HostClaim],
    tenant_id: Option<&str>,
    findings: &mut Findings,
) {
    for Served { path, host } in served {
        let Host::Named(host) = host else { continue };
        let colliding = claims.iter().find(|claim| {
            overlap(host, &claim.host)
                && (claim.tenant_id.is_none() || claim.tenant_id.as_deref() != tenant_id)
        });
        let Some(claim) = colliding else { continue };
        let owner = if claim.tenant_id.is_some() { "another tenant" } else { "the platform" };
        findings.add(Rule::HostCollision, path.clone(), format!("{host} is already served by {owner}"));
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(findings: Findings) -> Vec<String> {
        findings.into_vec().iter().map(ToString::to_string).collect()
    }

    fn allowed(served: &[Served], allowed: &[&str]) -> Vec<String> {
        let allowed: Vec<String> = allowed.iter().map(|entry| entry.to_string()).collect();
        let mut findings = Findings::default();
        check_allowed_hosts(served, &allowed, &mut findings);
        render(findings)
    }

    fn claim(host: &str, tenant_id: Option<&str>) -> HostClaim {
        HostClaim {
            host: host.into(),
            tenant_id: tenant_id.map(Into::into),
            namespace: "kubeop-other-web".into(),
            object: "Ingress/web".into(),
        }
    }

    fn collisions(served: &[Served], claims: &[HostClaim], tenant_id: Option<&str>) -> Vec<String> {
        let mut findings = Findings::default();
        check_collisions(served, claims, tenant_id, &mut findings);
        render(findings)
    }

    #[test]
    fn an_ingress_serves_its_rule_and_tls_hosts() {
        let ingress = json!({"spec": {
            "rules": [{"host": "shop.example.com"}, {"http": {}}],
            "tls": [{"hosts": ["shop.example.com", ""]}, {"secretName": "x"}],
            "defaultBackend": {"service": {"name": "web"}},
        }});
        let path = |p: &[&str]| FieldPath::root().fields(p);
        assert_eq!(
            ingress_hosts(&ingress),
            [
                Served {
                    path: path(&["spec", "rules"]).index(0).field("host"),
                    host: Host::Named("shop.example.com")
                },
                Served {
                    path: path(&["spec", "rules"]).index(1).field("host"),
                    host: Host::Every("an Ingress rule without a host")
                },
                Served {
                    path: path(&["spec", "tls"]).index(0).field("hosts").index(0),
                    host: Host::Named("shop.example.com")
                },
                Served {
                    path: path(&["spec", "defaultBackend"]),
                    host: Host::Every("an Ingress default backend")
                },
            ]
        );
        assert_eq!(ingress_hosts(&json!({"spec": "x"})), []);
    }

    #[test]
    fn an_http_route_serves_its_hostnames_or_every_host() {
        let route = json!({"spec": {"hostnames": ["a.apps.example.com", "b.apps.example.com"]}});
        let hosts: Vec<String> = http_route_hosts(&route).iter().map(|s| s.path.to_string()).collect();
        assert_eq!(hosts, ["spec.hostnames[0]", "spec.hostnames[1]"]);
        assert_eq!(
            http_route_hosts(&json!({"spec": {"parentRefs": []}})),
            [Served {
                path: FieldPath::root().fields(&["spec", "hostnames"]),
                host: Host::Every("an HTTPRoute without hostnames")
            }]
        );
        assert_eq!(http_route_hosts(&json!({"spec": {"hostnames": "x"}})), []);
    }

    #[test]
    fn allowed_hosts_are_allowed() {
        let route =
            json!({"spec": {"hostnames": ["shop.example.com", "a.apps.example.com", "*.apps.example.com"]}});
        assert_eq!(
            allowed(&http_route_hosts(&route), &["shop.example.com", "*.apps.example.com"]),
            Vec::<String>::new()
        );
        let catch_all = json!({"spec": {"rules": [{"http": {}}]}});
        assert_eq!(allowed(&ingress_hosts(&catch_all), &[]), Vec::<String>::new());
    }

    #[test]
    fn other_hosts_are_denied() {
        let route = json!({"spec": {"hostnames": ["a.b.apps.example.com", "*.example.com"]}});
        assert_eq!(
            allowed(&http_route_hosts(&route), &["*.apps.example.com"]),
            [
                "[allowed-hosts] spec.hostnames[0]: host a.b.apps.example.com is not in the allowed hosts (*.apps.example.com)",
                "[allowed-hosts] spec.hostnames[1]: host *.example.com is not in the allowed hosts (*.apps.example.com)",
            ]
        );
    }

    #[test]
    fn serving_every_host_is_denied_when_hosts_are_restricted() {
        let ingress = json!({"spec": {"rules": [{"host": ""}]}});
        assert_eq!(
            allowed(&ingress_hosts(&ingress), &["shop.example.com"]),
            [
                "[allowed-hosts] spec.rules[0].host: an Ingress rule without a host serves every host; name one of the allowed hosts (shop.example.com)"
            ]
        );
        let route = json!({"spec": {"hostnames": []}});
        assert_eq!(
            allowed(&http_route_hosts(&route), &["shop.example.com"]),
            [
                "[allowed-hosts] spec.hostnames: an HTTPRoute without hostnames serves every host; name one of the allowed hosts (shop.example.com)"
            ]
        );
    }

    #[test]
    fn hosts_of_the_same_tenant_do_not_collide() {
        let route = json!({"spec": {"hostnames": ["shop.example.com"]}});
        let claims = [
            claim("shop.example.com", Some("t_1")),
            claim("*.example.com", Some("t_1")),
            claim("cart.example.com", None),
        ];
        assert_eq!(collisions(&http_route_hosts(&route), &claims, Some("t_1")), Vec::<String>::new());
    }

    #[test]
    fn hosts_of_another_tenant_or_the_platform_collide_without_naming_them() {
        let route =
            json!({"spec": {"hostnames": ["shop.example.com", "*.apps.example.com", "free.example.com"]}});
        let claims = [
            claim("*.example.com", Some("t_2")),
            claim("x.apps.example.com", None),
            claim("a.b.example.com", Some("t_2")),
        ];
        let found = collisions(&http_route_hosts(&route), &claims, Some("t_1"));
        assert_eq!(
            found,
            [
                "[host-collision] spec.hostnames[0]: shop.example.com is already served by another tenant",
                "[host-collision] spec.hostnames[1]: *.apps.example.com is already served by the platform",
                "[host-collision] spec.hostnames[2]: free.example.com is already served by another tenant",
            ]
        );
        assert!(found.iter().all(|f| !f.contains("t_2") && !f.contains("kubeop-other-web")));
    }

    #[test]
    fn claims_that_do_not_overlap_are_ignored() {
        let route = json!({"spec": {"hostnames": ["shop.example.com"]}});
        let claims = [
            claim("a.shop.example.com", Some("t_2")),
            claim("example.com", None),
            claim("*.shop.example.com", None),
        ];
        assert_eq!(collisions(&http_route_hosts(&route), &claims, Some("t_1")), Vec::<String>::new());
    }

    #[test]
    fn outside_kubeop_every_claim_collides() {
        let route = json!({"spec": {"hostnames": ["shop.example.com"]}});
        assert_eq!(
            collisions(&http_route_hosts(&route), &[claim("shop.example.com", Some("t_2"))], None),
            ["[host-collision] spec.hostnames[0]: shop.example.com is already served by another tenant"]
        );
    }
}
