//! Kubernetes resource quantities (`500m`, `8Gi`, `1e3`), as exact decimals.
//!
//! The grammar is Kubernetes': an optionally signed decimal number, then a decimal SI suffix
//! (`m`, none, `k`, `M`, `G`, `T`, `P`, `E`), a binary one (`Ki` … `Ei`) or a decimal exponent
//! (`e3`, `E-2`).

use rust_decimal::Decimal;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(Decimal);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityError {
    /// Not a quantity at all.
    Invalid,
    /// A quantity, but beyond what 96-bit decimals with 28 fractional digits hold exactly.
    OutOfRange,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantityError::Invalid => "is not a Kubernetes quantity",
            QuantityError::OutOfRange => "is out of the range this policy can compare exactly",
        })
    }
}

/// Decimal's largest scale (digits after the point).
const MAX_SCALE: u32 = 28;

impl Quantity {
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let number_end =
            text.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))).unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_end);
        let number = parse_number(number)?;
        let value = match parse_suffix(suffix)? {
            Multiplier::PowerOfTen(exponent) => times_power_of_ten(number, exponent)?,
            Multiplier::PowerOfTwo(exponent) => times(number, 1i128 << exponent)?,
        };
        Ok(Quantity(value))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

/// `[+-]digits[.digits]`, with digits on at least one side of the point.
fn parse_number(text: &str) -> Result<Decimal, QuantityError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(QuantityError::Invalid);
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    let plain = if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") };
    let magnitude = Decimal::from_str_exact(&plain).map_err(|_| QuantityError::OutOfRange)?;
    Ok(if negative { -magnitude } else { magnitude })
}

enum Multiplier {
    PowerOfTen(i32),
    PowerOfTwo(u32),
}

fn parse_suffix(suffix: &str) -> Result<Multiplier, QuantityError> {
    let multiplier = match suffix {
        "m" => Multiplier::PowerOfTen(-3),
        "" => Multiplier::PowerOfTen(0),
        "k" => Multiplier::PowerOfTen(3),
        "M" => Multiplier::PowerOfTen(6),
        "G" => Multiplier::PowerOfTen(9),
        "T" => Multiplier::PowerOfTen(12),
        "P" => Multiplier::PowerOfTen(15),
        "E" => Multiplier::PowerOfTen(18),
        "Ki" => Multiplier::PowerOfTwo(10),
        "Mi" => Multiplier::PowerOfTwo(20),
        "Gi" => Multiplier::PowerOfTwo(30),
        "Ti" => Multiplier::PowerOfTwo(40),
        "Pi" => Multiplier::PowerOfTwo(50),
        "Ei" => Multiplier::PowerOfTwo(60),
        _ => Multiplier::PowerOfTen(parse_exponent(suffix)?),
    };
    Ok(multiplier)
}

/// `e` or `E`, then an optionally signed integer.
fn parse_exponent(suffix: &str) -> Result<i32, QuantityError> {
    let exponent = suffix.strip_prefix(['e', 'E']).ok_or(QuantityError::Invalid)?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Invalid);
    }
    exponent.parse().map_err(|_| QuantityError::OutOfRange)
}

/// `number × 10^exponent`, exactly: a negative exponent only moves the point.
fn times_power_of_ten(number: Decimal, exponent: i32) -> Result<Decimal, QuantityError> {
    if exponent >= 0 {
        let factor = 10i128.checked_pow(exponent.unsigned_abs()).ok_or(QuantityError::OutOfRange)?;
        return times(number, factor);
    }
    let scale = number.scale() + exponent.unsigned_abs();
    if scale > MAX_SCALE {
        return Err(QuantityError::OutOfRange);
    }
    Decimal::try_from_i128_with_scale(number.mantissa(), scale).map_err(|_| QuantityError::OutOfRange)
}

/// `number × factor` on the mantissa, so that it either is exact or fails (Decimal's own
/// multiplication rounds when the product does not fit).
fn times(number: Decimal, factor: i128) -> Result<Decimal, QuantityError> {
    let mantissa = number.mantissa().checked_mul(factor).ok_or(QuantityError::OutOfRange)?;
    Decimal::try_from_i128_with_scale(mantissa, number.scale()).map_err(|_| QuantityError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn decimal_suffixes_scale_by_powers_of_ten() {
        assert_eq!(q("500m").to_string(), "0.5");
        assert_eq!(q("4").to_string(), "4");
        assert_eq!(q("1.5k").to_string(), "1500");
        assert_eq!(q("2M").to_string(), "2000000");
        assert_eq!(q("1G").to_string(), "1000000000");
        assert_eq!(q("1T"), q("1000G"));
        assert_eq!(q("1P"), q("1000T"));
        assert_eq!(q("1E").to_string(), "1000000000000000000");
    }

    #[test]
    fn binary_suffixes_scale_by_powers_of_two() {
        assert_eq!(q("1Ki").to_string(), "1024");
        assert_eq!(q("8Gi").to_string(), "8589934592");
        assert_eq!(q("0.5Mi").to_string(), "524288");
        assert_eq!(q("1Ti"), q("1024Gi"));
        assert_eq!(q("1Ei"), q("1024Pi"));
    }

    #[test]
    fn exponents_are_exact() {
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1000"));
        assert_eq!(q("5e-1"), q("500m"));
        assert_eq!(q("12.5e+2").to_string(), "1250");
        assert_eq!(q("1e-28").to_string(), "0.0000000000000000000000000001");
    }

    #[test]
    fn numbers_may_be_signed_and_have_a_bare_point() {
        assert_eq!(q("+1"), q("1"));
        assert_eq!(q("-1").to_string(), "-1");
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("5."), q("5"));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(q("4") < q("4001m"));
        assert!(q("4000m") == q("4"));
        assert!(q("8Gi") > q("8G"));
        assert!(q("8589934592") == q("8Gi"));
        assert!(q("8589934593") > q("8Gi"));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in
            ["", "m", "abc", "1x", "1 Gi", "1gi", "1KI", "1e", "1e+", "1.2.3", ".", "--1", "1e3.5", "1Gi3"]
        {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Invalid), "{bad}");
        }
    }

    #[test]
    fn quantities_too_large_or_precise_for_exact_comparison_are_refused() {
        for huge in ["1e40", "100000000000Ei", "1e-29", "0.1e-28", "99999999999999999999999999999999"] {
            assert_eq!(Quantity::parse(huge), Err(QuantityError::OutOfRange), "{huge}");
        }
    }
}
