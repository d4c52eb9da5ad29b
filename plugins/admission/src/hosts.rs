//! Host names and wildcards (`*.apps.example.com`, for exactly one more label), compared
//! without regard to ASCII case.

/// Whether an object may serve `host` under the allowed-hosts entry `pattern`. A wildcard host
/// is allowed only by the identical wildcard: it covers names the pattern might not.
pub fn allowed_by(host: &str, pattern: &str) -> bool {
    let (host, pattern) = (host.trim(), pattern.trim());
    host.eq_ignore_ascii_case(pattern) || one_label_under(host, pattern)
}

/// Whether two hosts can name the same site: equal, identical wildcards, or a wildcard and a
/// name it covers.
pub fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || one_label_under(a, b) || one_label_under(b, a)
}

/// Whether `host` is a plain name exactly one label under the wildcard's suffix.
fn one_label_under(host: &str, wildcard: &str) -> bool {
    let Some(suffix) = wildcard.strip_prefix("*.").filter(|suffix| !suffix.is_empty()) else { return false };
    let Some((label, rest)) = host.split_once('.') else { return false };
    !label.is_empty() && label != "*" && rest.eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_entries_match_without_regard_to_case() {
        assert!(allowed_by("shop.example.com", "shop.example.com"));
        assert!(allowed_by("Shop.Example.COM", "shop.example.com"));
        assert!(!allowed_by("shop.example.com", "example.com"));
        assert!(!allowed_by("shop.example.com.evil.io", "shop.example.com"));
    }

    #[test]
    fn a_wildcard_entry_allows_exactly_one_more_label() {
        assert!(allowed_by("a.apps.example.com", "*.apps.example.com"));
        assert!(allowed_by("A.APPS.example.com", "*.apps.example.com"));
        assert!(!allowed_by("a.b.apps.example.com", "*.apps.example.com"));
        assert!(!allowed_by("apps.example.com", "*.apps.example.com"));
        assert!(!allowed_by("evilapps.example.com", "*.apps.example.com"));
    }

    #[test]
    fn a_wildcard_host_is_allowed_only_by_the_same_wildcard() {
        assert!(allowed_by("*.apps.example.com", "*.apps.example.com"));
        assert!(!allowed_by("*.apps.example.com", "*.example.com"));
        assert!(!allowed_by("*.example.com", "a.example.com"));
    }

    #[test]
    fn overlapping_hosts() {
        assert!(overlap("shop.example.com", "SHOP.example.com"));
        assert!(overlap("*.example.com", "shop.example.com"));
        assert!(overlap("shop.example.com", "*.example.com"));
        assert!(overlap("*.example.com", "*.example.com"));
        assert!(!overlap("shop.example.com", "cart.example.com"));
        assert!(!overlap("*.example.com", "a.shop.example.com"));
        assert!(!overlap("*.example.com", "example.com"));
        assert!(!overlap("*.example.com", "*.shop.example.com"));
    }
}
