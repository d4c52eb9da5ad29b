//! Exact decimals for prices. Parsed from text, never through a float.

use rust_decimal::Decimal;
use serde::Serialize;

use super::Invalid;

/// Parses a plain decimal ("12", "0.0004", "-3.50"): no exponent, no separators, and no more
/// digits than a 96-bit decimal holds exactly.
pub fn parse_decimal(raw: &str) -> Result<Decimal, Invalid> {
    let text = raw.trim();
    let plain = !text.is_empty()
        && text.strip_prefix('-').unwrap_or(text).chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1
        && !text.starts_with('.')
        && !text.ends_with('.');
    if !plain {
        return Err(Invalid(format!("`{raw}` is not a decimal number such as 0.0004")));
    }
    Decimal::from_str_exact(text)
        .map_err(|_| Invalid(format!("`{raw}` has more digits than can be kept exactly")))
}

/// A price: a non-negative exact decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Rate(Decimal);

impl Rate {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = parse_decimal(raw)?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(Invalid(format!("`{raw}` is negative; a rate is zero or more")));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A percentage from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Percent(Decimal);

impl Percent {
    pub const ZERO: Percent = Percent(Decimal::ZERO);

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = parse_decimal(raw)?;
        if value < Decimal::ZERO || value > Decimal::ONE_HUNDRED {
            return Err(Invalid(format!("`{raw}` is not a percentage from 0 to 100")));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a tenant pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates {
    /// Per milli-CPU per hour.
    pub cpu_milli: Rate,
    /// Per MiB of memory per hour.
    pub mem_mib: Rate,
    pub tier: Option<String>,
    pub discount_percent: Percent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_plain() {
        assert_eq!(parse_decimal("0.0004").unwrap().to_string(), "0.0004");
        assert_eq!(parse_decimal("12").unwrap().to_string(), "12");
        assert_eq!(parse_decimal("-3.50").unwrap().to_string(), "-3.50");
        for bad in ["", "1e-4", ".5", "5.", "1,5", "1_000", "0x10", "NaN", "1.2.3", " "] {
            assert!(parse_decimal(bad).is_err(), "{bad:?}");
        }
        assert!(parse_decimal("0.12345678901234567890123456789012").is_err(), "beyond 28 digits");
    }

    #[test]
    fn rates_and_percentages() {
        assert_eq!(Rate::parse("0.000040").unwrap().to_string(), "0.00004");
        assert!(Rate::parse("-0.1").is_err());
        assert!(Rate::parse("0").is_ok());
        assert!(Percent::parse("100").is_ok());
        assert!(Percent::parse("100.01").is_err());
        assert!(Percent::parse("-1").is_err());
    }
}
