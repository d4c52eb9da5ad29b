//! The platform policy: which registries images may come from, the egress every project may
//! always reach, ceilings for project quotas, and what the admission review allows besides
//! (hosts, Service types, rules in audit mode).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Hostname, Invalid, Quantity, name::check_label};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPolicy {
    pub image_allowlist: Vec<Registry>,
    pub egress_baseline: Vec<Cidr>,
    pub quota_max: QuotaMax,
    #[serde(default)]
    pub admission: AdmissionPolicy,
}

/// What the admission review allows beyond the base policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionPolicy {
    /// Hosts apps, Ingresses and HTTPRoutes may serve; empty allows any.
    #[serde(default)]
    pub allowed_hosts: Vec<HostPattern>,
    /// Service types allowed besides ClusterIP.
    #[serde(default)]
    pub allowed_service_types: Vec<ServiceType>,
    /// Admission rules whose denials are only warnings.
    #[serde(default)]
    pub audit_rules: Vec<RuleName>,
}

/// The most entries each admission list may have: they are passed to every admission call.
pub const MAX_ADMISSION_ENTRIES: usize = 256;

impl AdmissionPolicy {
    pub fn parse(
        hosts: &[String],
        service_types: &[String],
        audit_rules: &[String],
    ) -> Result<Self, (&'static str, Invalid)> {
        fn each<T>(
            field: &'static str,
            raw: &[String],
            parse: impl Fn(&str) -> Result<T, Invalid>,
        ) -> Result<Vec<T>, (&'static str, Invalid)> {
            if raw.len() > MAX_ADMISSION_ENTRIES {
                return Err((
                    field,
                    Invalid(format!("{} entries; at most {MAX_ADMISSION_ENTRIES}", raw.len())),
                ));
            }
            let mut parsed: Vec<T> = Vec::with_capacity(raw.len());
            for (i, entry) in raw.iter().enumerate() {
                parsed.push(parse(entry).map_err(|e| (field, Invalid(format!("entry {i}: {}", e.0))))?);
            }
            Ok(parsed)
        }
        Ok(Self {
            allowed_hosts: each("allowedHosts", hosts, HostPattern::parse)?,
            allowed_service_types: each("allowedServiceTypes", service_types, ServiceType::parse)?,
            audit_rules: each("auditRules", audit_rules, RuleName::parse)?,
        })
    }

    /// Each list as the text the API, the ConfigMap and the plugins carry.
    pub fn allowed_host_texts(&self) -> Vec<String> {
        self.allowed_hosts.iter().map(|h| h.as_str().to_owned()).collect()
    }

    pub fn allowed_service_type_texts(&self) -> Vec<String> {
        self.allowed_service_types.iter().map(|t| t.as_str().to_owned()).collect()
    }

    pub fn audit_rule_texts(&self) -> Vec<String> {
        self.audit_rules.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// Whether `host` may be served: it matches an allowed pattern, or none is set.
    pub fn allows_host(&self, host: &Hostname) -> bool {
        self.allowed_hosts.is_empty() || self.allowed_hosts.iter().any(|pattern| pattern.matches(host))
    }
}

/// An allowed host: an exact DNS name (`shop.example.com`) or a wildcard for exactly one more
/// label (`*.apps.example.com`; the suffix has at least two labels, so `*.com` is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern(String);

impl HostPattern {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        match text.strip_prefix("*.") {
            Some(suffix) => {
                let suffix = Hostname::parse(suffix)?;
                if !suffix.as_str().contains('.') {
                    return Err(Invalid(format!(
                        "`{raw}` covers a whole top-level domain; a wildcard needs at least two labels after `*.`"
                    )));
                }
                Ok(Self(format!("*.{}", suffix.as_str())))
            }
            None if text.contains('*') => Err(Invalid(format!(
                "`{raw}`: a wildcard is allowed only as the whole first label (`*.example.com`)"
            ))),
            None => Ok(Self(Hostname::parse(text)?.as_str().to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `shop.example.com` matches itself; `*.example.com` matches `a.example.com` only.
    pub fn matches(&self, host: &Hostname) -> bool {
        match self.0.strip_prefix("*.") {
            Some(suffix) => host.as_str().split_once('.').is_some_and(|(_, rest)| rest == suffix),
            None => host.as_str() == self.0,
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).map_err(|e| e.0)
    }
}

impl From<HostPattern> for String {
    fn from(pattern: HostPattern) -> String {
        pattern.0
    }
}

/// A Service type that needs the policy's permission: `NodePort`, `LoadBalancer` or
/// `ExternalName` (ClusterIP is always allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl ServiceType {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim() {
            "NodePort" => Ok(Self::NodePort),
            "LoadBalancer" => Ok(Self::LoadBalancer),
            "ExternalName" => Ok(Self::ExternalName),
            "ClusterIP" => Err(Invalid(
                "`ClusterIP` is always allowed; list only NodePort, LoadBalancer or ExternalName".into(),
            )),
            other => Err(Invalid(format!(
                "`{other}` is not a Service type that needs allowing (NodePort, LoadBalancer, ExternalName)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
            Self::ExternalName => "ExternalName",
        }
    }
}

/// The name of an admission rule (`host-collision`, `privileged`, …): a DNS-1123 label, since
/// plugins other than the built-in name their own rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleName(String);

impl RuleName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        check_label(text).map_err(|why| Invalid(format!("rule `{raw}` {why}")))?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RuleName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).map_err(|e| e.0)
    }
}

impl From<RuleName> for String {
    fn from(rule: RuleName) -> String {
        rule.0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaMax {
    pub requests_cpu: Option<Quantity>,
    pub requests_memory: Option<Quantity>,
}

impl PlatformPolicy {
    /// Parses allowlist entries; an error names the entry by position.
    pub fn parse_registries(raw: &[String]) -> Result<Vec<Registry>, Invalid> {
        raw.iter()
            .enumerate()
            .map(|(i, entry)| Registry::parse(entry).map_err(|e| Invalid(format!("entry {i}: {}", e.0))))
            .collect()
    }

    pub fn parse_cidrs(raw: &[String]) -> Result<Vec<Cidr>, Invalid> {
        raw.iter()
            .enumerate()
            .map(|(i, entry)| Cidr::parse(entry).map_err(|e| Invalid(format!("entry {i}: {}", e.0))))
            .collect()
    }
}

/// A registry as images name it: `host` or `host:port`, the host a DNS name or an IP address
/// (IPv6 in brackets). Stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Registry(String);

impl Registry {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = |why: &str| Invalid(format!("`{raw}` is not a registry (host or host:port): {why}"));
        let text = raw.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.contains('/') {
            return Err(invalid("a registry has no path; give only the host"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| invalid("unclosed `[`"))?;
            inside.parse::<std::net::Ipv6Addr>().map_err(|_| invalid("not an IPv6 address in brackets"))?;
            let port = match after {
                "" => None,
                rest => Some(rest.strip_prefix(':').ok_or_else(|| invalid("junk after `]`"))?),
            };
            (None, port)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (Some(host), Some(port)),
                None => (Some(text.as_str()), None),
            }
        };
        if let Some(port) = port {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(invalid("the port must be a number from 1 to 65535")),
            }
        }
        if let Some(host) = host
            && host.parse::<IpAddr>().is_err()
        {
            for label in host.split('.') {
                check_label(label).map_err(|why| invalid(&format!("`{label}` {why}")))?;
            }
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IPv4 or IPv6 network in CIDR notation, with no host bits set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cidr(String);

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        let invalid = |why: String| Invalid(format!("`{raw}` is not a CIDR: {why}"));
        let (address, prefix) =
            text.split_once('/').ok_or_else(|| invalid("expected address/prefix, e.g. 10.0.0.0/8".into()))?;
        let address: IpAddr =
            address.parse().map_err(|_| invalid(format!("`{address}` is not an IP address")))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| invalid(format!("the prefix must be a number from 0 to {bits}")))?;
        let value: u128 = match address {
            IpAddr::V4(v4) => u32::from(v4).into(),
            IpAddr::V6(v6) => v6.into(),
        };
        let host_bits = bits - prefix;
        let host_mask = if host_bits == 0 { 0 } else { u128::MAX >> (128 - host_bits) };
        if value & host_mask != 0 {
            let network = value & !host_mask;
            let network = match address {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(network as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(network)),
            };
            return Err(invalid(format!("it has host bits set; the network is {network}/{prefix}")));
        }
        Ok(Self(format!("{address}/{prefix}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries() {
        for ok in ["docker.io", "GHCR.io", "localhost:5000", "10.0.0.1:5000", "[::1]:5000", "registry"] {
            assert!(Registry::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Registry::parse("GHCR.io").unwrap().as_str(), "ghcr.io");
        for bad in
            ["", "docker.io/library", "evil io", "host:0", "host:99999", "host:", "-x.io", "[::1", "[zz]:1"]
        {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().as_str(), "10.0.0.0/8");
        assert!(Cidr::parse("0.0.0.0/0").is_ok());
        assert!(Cidr::parse("fd00::/8").is_ok());
        assert!(Cidr::parse("192.168.1.7/32").is_ok());
        let err = Cidr::parse("10.0.0.1/8").unwrap_err().0;
        assert!(err.contains("10.0.0.0/8"), "{err}");
        for bad in ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "ten/8", "10.0.0.0/-1", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        let host = |h| Hostname::parse(h).unwrap();
        let exact = HostPattern::parse("Shop.Example.com").unwrap();
        assert_eq!(exact.as_str(), "shop.example.com");
        assert!(exact.matches(&host("shop.example.com")));
        assert!(!exact.matches(&host("a.shop.example.com")));
        let wildcard = HostPattern::parse("*.apps.example.com").unwrap();
        assert!(wildcard.matches(&host("web.apps.example.com")));
        assert!(!wildcard.matches(&host("a.web.apps.example.com")));
        assert!(!wildcard.matches(&host("apps.example.com")));
        assert!(!wildcard.matches(&host("evilapps.example.com")));
        for bad in ["*.com", "a.*.example.com", "*", "**.example.com", "shop_1.example.com", ""] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        let policy = AdmissionPolicy { allowed_hosts: vec![wildcard], ..AdmissionPolicy::default() };
        assert!(policy.allows_host(&host("x.apps.example.com")));
        assert!(!policy.allows_host(&host("example.com")));
        assert!(AdmissionPolicy::default().allows_host(&host("anything.test")));
    }

    #[test]
    fn admission_lists_name_the_field_and_entry() {
        let (field, why) =
            AdmissionPolicy::parse(&[], &["NodePort".into(), "Magic".into()], &[]).unwrap_err();
        assert_eq!(field, "allowedServiceTypes");
        assert!(why.0.starts_with("entry 1:") && why.0.contains("Magic"), "{}", why.0);
        assert!(AdmissionPolicy::parse(&[], &["ClusterIP".into()], &[]).is_err());
        let (field, _) = AdmissionPolicy::parse(&[], &[], &["Host Collision".into()]).unwrap_err();
        assert_eq!(field, "auditRules");
        let many = vec!["a.example.com".to_owned(); MAX_ADMISSION_ENTRIES + 1];
        assert_eq!(AdmissionPolicy::parse(&many, &[], &[]).unwrap_err().0, "allowedHosts");
        let ok = AdmissionPolicy::parse(
            &["*.apps.example.com".into()],
            &["LoadBalancer".into()],
            &["host-collision".into()],
        )
        .unwrap();
        assert_eq!(ok.audit_rules[0].as_str(), "host-collision");
    }

    #[test]
    fn entries_are_named_by_position() {
        let err = PlatformPolicy::parse_registries(&["docker.io".into(), "evil io".into()]).unwrap_err().0;
        assert!(err.starts_with("entry 1:") && err.contains("evil io"), "{err}");
    }
}
