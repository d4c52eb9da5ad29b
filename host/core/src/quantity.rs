//! Kubernetes resource quantities ("500m", "4", "8Gi", "1e3"), as quota ceilings.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Invalid;

/// A positive Kubernetes quantity, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(String);

const BINARY: &[(&str, u32)] = &[("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
const DECIMAL: &[(&str, i32)] =
    &[("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)];

impl Quantity {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = |why: &str| Invalid(format!("`{raw}` is not a Kubernetes quantity: {why}"));
        let text = raw.trim();
        let number_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_end);
        let number = number.strip_prefix('+').unwrap_or(number);
        if number.is_empty() || number.starts_with('-') || number.matches('.').count() > 1 || number == "." {
            return Err(invalid("expected a positive number such as 500m, 4 or 8Gi"));
        }
        let mut value: Decimal = number.parse().map_err(|_| invalid("the number is malformed"))?;
        if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            value *= Decimal::from(1u64 << power);
        } else if let Some((_, exponent)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            value = scale(value, *exponent).ok_or_else(|| invalid("too large"))?;
        } else if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
            let exponent: i32 = exponent.parse().map_err(|_| invalid("the exponent is malformed"))?;
            value = scale(value, exponent).ok_or_else(|| invalid("too large"))?;
        } else if !suffix.is_empty() {
            return Err(invalid(&format!("unknown suffix `{suffix}` (use m, k, M, G, Ki, Mi, Gi, …)")));
        }
        if value <= Decimal::ZERO {
            return Err(invalid("it must be greater than zero"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `value × 10^exponent`, or `None` when it does not fit a decimal.
fn scale(value: Decimal, exponent: i32) -> Option<Decimal> {
    let mut result = value;
    for _ in 0..exponent.unsigned_abs() {
        result = if exponent > 0 { result.checked_mul(Decimal::TEN)? } else { result / Decimal::TEN };
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_quantities() {
        for ok in ["4", "500m", "0.5", "8Gi", "512Mi", "1e3", "2k", "1.5G", "+1"] {
            assert!(Quantity::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for bad in ["", "0", "0m", "-1", "4 cores", "8GB", "1.2.3", "m", "1e", "Gi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }
}
