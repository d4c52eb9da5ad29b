//! IP address blocks (`10.0.0.0/8`, `fd00::/8`) and whether one lies inside another.

use std::net::IpAddr;

/// A parsed CIDR, its address masked to the prefix (`10.1.2.3/8` is `10.0.0.0/8`, as
/// Kubernetes reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address bits, right-aligned: an IPv4 address uses the low 32.
    bits: u128,
    /// 32 for IPv4, 128 for IPv6.
    width: u8,
    prefix: u8,
}

impl Cidr {
    /// `address/prefix`; `None` for anything else, a bare address included.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = text.trim().split_once('/')?;
        let (bits, width) = match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        // `u8::from_str` would take "+8".
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok().filter(|prefix| *prefix <= width)?;
        Some(Cidr { bits: bits & mask(prefix, width), width, prefix })
    }

    /// Whether every address of `inner` is an address of `self`.
    pub fn contains(&self, inner: &Cidr) -> bool {
        self.width == inner.width
            && inner.prefix >= self.prefix
            && inner.bits & mask(self.prefix, self.width) == self.bits
    }
}

/// The network bits of a `prefix`-long network in a `width`-bit address.
fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    (u128::MAX << (width - prefix)) & all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap_or_else(|| panic!("{text} did not parse"))
    }

    #[test]
    fn cidrs_parse_and_mask_their_address() {
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr(" 0.0.0.0/0 "), cidr("255.255.255.255/0"));
        assert_eq!(cidr("fd00::1/8"), cidr("fd00::/8"));
        for bad in
            ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/+8", "10.0.0.0/", "10.0.0/8", "fd00::/129", "x/8", ""]
        {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_network_contains_its_subnets_only() {
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.0.0.0/8")));
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.42.0.0/16")));
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.255.255.255/32")));
        assert!(cidr("0.0.0.0/0").contains(&cidr("203.0.113.0/24")));
        assert!(!cidr("10.0.0.0/8").contains(&cidr("0.0.0.0/0")));
        assert!(!cidr("10.0.0.0/8").contains(&cidr("11.0.0.0/16")));
        assert!(!cidr("10.0.0.0/16").contains(&cidr("10.0.0.0/8")));
    }

    #[test]
    fn ipv6_networks_contain_ipv6_subnets_only() {
        assert!(cidr("fd00::/8").contains(&cidr("fd12:3456::/32")));
        assert!(cidr("::/0").contains(&cidr("2001:db8::1/128")));
        assert!(!cidr("fd00::/8").contains(&cidr("fe80::/10")));
        assert!(!cidr("::/0").contains(&cidr("10.0.0.0/8")));
        assert!(!cidr("0.0.0.0/0").contains(&cidr("::/0")));
    }
}
