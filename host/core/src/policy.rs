//! The platform policy: which registries images may come from, the egress every project may
//! always reach, and ceilings for project quotas.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Invalid, Quantity, name::check_label};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPolicy {
    pub image_allowlist: Vec<Registry>,
    pub egress_baseline: Vec<Cidr>,
    pub quota_max: QuotaMax,
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
    fn entries_are_named_by_position() {
        let err = PlatformPolicy::parse_registries(&["docker.io".into(), "evil io".into()]).unwrap_err().0;
        assert!(err.starts_with("entry 1:") && err.contains("evil io"), "{err}");
    }
}
