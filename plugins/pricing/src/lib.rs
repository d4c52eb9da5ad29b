//! kubeop's built-in pricing (the `pricing` slot's default).
//!
//! Invoice lines for a tenant's usage over a period:
//!
//! - `CPU`: total milli-CPU hours × `rates.cpu-milli-hour`;
//! - `Memory`: total MiB hours × `rates.mem-mib-hour`;
//! - `Discount (N%)`, when `rates.discount-percent` is not zero: minus N% of the two amounts.
//!
//! Money is exact decimal arithmetic (`rust_decimal`), never floats. Each amount is rounded once,
//! half to even (banker's rounding), to the currency's `precision`, and written with exactly that
//! many decimal places. Lines are emitted even for zero usage.

wit_bindgen::generate!({
    world: "pricing",
    path: "../../wit",
});

use kubeop::plugin::host::{Level, log};
use rust_decimal::{Decimal, RoundingStrategy};

struct Pricing;

impl Guest for Pricing {
    fn price(request: PricingRequest) -> Result<Vec<InvoiceLine>, String> {
        let lines = price(&request);
        if let Err(err) = &lines {
            log(Level::Warn, &format!("cannot price tenant {}: {err}", request.tenant_id));
        }
        lines
    }
}

export!(Pricing);

/// Decimal's largest scale.
const MAX_PRECISION: u8 = 28;

fn price(request: &PricingRequest) -> Result<Vec<InvoiceLine>, String> {
    let rates = &request.rates;
    let cpu_rate = parse_rate("cpu-milli-hour", &rates.cpu_milli_hour)?;
    let mem_rate = parse_rate("mem-mib-hour", &rates.mem_mib_hour)?;
    let discount = parse_rate("discount-percent", &rates.discount_percent)?;
    if discount > Decimal::ONE_HUNDRED {
        return Err(format!("rates.discount-percent {} is more than 100", rates.discount_percent));
    }
    if rates.precision > MAX_PRECISION {
        return Err(format!("rates.precision {} is more than {MAX_PRECISION}", rates.precision));
    }
    let precision = u32::from(rates.precision);

    let cpu_milli_hours = total(request.usage.iter().map(|hour| hour.cpu_milli))?;
    let mem_mib_hours = total(request.usage.iter().map(|hour| hour.mem_mib))?;

    let cpu = line("CPU usage (milli-CPU hours)", cpu_milli_hours, "cpu-milli-hour", cpu_rate, precision)?;
    let memory = line("Memory usage (MiB hours)", mem_mib_hours, "mem-mib-hour", mem_rate, precision)?;
    let subtotal = cpu.1.checked_add(memory.1).ok_or_else(overflow)?;
    let mut lines = vec![cpu.0, memory.0];
    if !discount.is_zero() {
        lines.push(discount_line(subtotal, discount, precision)?);
    }
    Ok(lines)
}

/// A line of `quantity` at `unit_price`, and its amount.
fn line(
    description: &str,
    quantity: Decimal,
    unit: &str,
    unit_price: Decimal,
    precision: u32,
) -> Result<(InvoiceLine, Decimal), String> {
    let amount = round(quantity.checked_mul(unit_price).ok_or_else(overflow)?, precision)?;
    let line = InvoiceLine {
        description: description.into(),
        quantity: quantity.to_string(),
        unit: unit.into(),
        unit_price: unit_price.to_string(),
        amount: amount.to_string(),
    };
    Ok((line, amount))
}

/// `discount` percent off `subtotal`, as a negative line.
fn discount_line(subtotal: Decimal, discount: Decimal, precision: u32) -> Result<InvoiceLine, String> {
    let off = subtotal
        .checked_mul(discount)
        .and_then(|d| d.checked_div(Decimal::ONE_HUNDRED))
        .ok_or_else(overflow)?;
    let amount = round(-off, precision)?.to_string();
    Ok(InvoiceLine {
        description: format!("Discount ({}%)", discount.normalize()),
        quantity: "1".into(),
        unit: "discount".into(),
        unit_price: amount.clone(),
        amount,
    })
}

/// `value` rounded half to even to exactly `precision` decimal places (`0.00`, never `-0.00`).
fn round(value: Decimal, precision: u32) -> Result<Decimal, String> {
    let mut rounded = value.round_dp_with_strategy(precision, RoundingStrategy::MidpointNearestEven);
    rounded.rescale(precision);
    if rounded.scale() != precision {
        return Err(overflow());
    }
    if rounded.is_zero() {
        rounded.set_sign_positive(true);
    }
    Ok(rounded)
}

/// A rate: a non-negative decimal in plain notation.
fn parse_rate(name: &str, text: &str) -> Result<Decimal, String> {
    let value =
        parse_decimal(text).ok_or_else(|| format!("rates.{name} {text:?} is not a decimal number"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("rates.{name} {text} is negative"));
    }
    Ok(value)
}

/// A decimal in the WIT's plain notation: an optional `-`, digits, an optional `.` and digits.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return None;
    }
    text.parse().ok()
}

/// The sum of `values` as a decimal.
fn total(values: impl Iterator<Item = u64>) -> Result<Decimal, String> {
    let sum: u128 = values.map(u128::from).sum();
    i128::try_from(sum)
        .ok()
        .and_then(|sum| Decimal::try_from_i128_with_scale(sum, 0).ok())
        .ok_or_else(overflow)
}

fn overflow() -> String {
    "an amount is too large to compute".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeop::plugin::types::{Rates, UsageHour};

    fn request(cpu: &str, mem: &str, discount: &str, precision: u8, usage: &[(u64, u64)]) -> PricingRequest {
        PricingRequest {
            tenant_id: "t_1".into(),
            period_start: 1_700_000_000,
            period_end: 1_700_003_600,
            rates: Rates {
                cpu_milli_hour: cpu.into(),
                mem_mib_hour: mem.into(),
                tier: None,
                discount_percent: discount.into(),
                currency: "EUR".into(),
                precision,
            },
            usage: usage
                .iter()
                .enumerate()
                .map(|(i, &(cpu_milli, mem_mib))| UsageHour { hour: 3600 * i as i64, cpu_milli, mem_mib })
                .collect(),
        }
    }

    fn cells(lines: &[InvoiceLine]) -> Vec<(&str, &str, &str, &str, &str)> {
        lines
            .iter()
            .map(|l| {
                (
                    l.description.as_str(),
                    l.quantity.as_str(),
                    l.unit.as_str(),
                    l.unit_price.as_str(),
                    l.amount.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn cpu_memory_and_discount() {
        // CPU: 3000 × 0.0004 = 1.2; memory: 6144 × 0.00001 = 0.06144 → 0.06; discount 10% of 1.26.
        let lines = price(&request("0.0004", "0.00001", "10", 2, &[(1000, 2048), (2000, 4096)])).unwrap();
        assert_eq!(
            cells(&lines),
            [
                ("CPU usage (milli-CPU hours)", "3000", "cpu-milli-hour", "0.0004", "1.20"),
                ("Memory usage (MiB hours)", "6144", "mem-mib-hour", "0.00001", "0.06"),
                ("Discount (10%)", "1", "discount", "-0.13", "-0.13"),
            ]
        );
    }

    #[test]
    fn no_discount_line_without_a_discount_and_zero_lines_for_no_usage() {
        let lines = price(&request("0.0004", "0.00001", "0", 2, &[])).unwrap();
        assert_eq!(
            cells(&lines),
            [
                ("CPU usage (milli-CPU hours)", "0", "cpu-milli-hour", "0.0004", "0.00"),
                ("Memory usage (MiB hours)", "0", "mem-mib-hour", "0.00001", "0.00"),
            ]
        );
        let lines = price(&request("0.0004", "0.00001", "25", 2, &[])).unwrap();
        assert_eq!(lines[2].amount, "0.00");
    }

    #[test]
    fn rounding_is_half_to_even_once_per_amount() {
        // 5 × 0.001 = 0.005 → 0.00; 15 × 0.001 = 0.015 → 0.02.
        let lines = price(&request("0.001", "0.001", "0", 2, &[(5, 15)])).unwrap();
        assert_eq!((lines[0].amount.as_str(), lines[1].amount.as_str()), ("0.00", "0.02"));
        // Discount: 12.5% of 0.02 = 0.0025 → 0.00 (not 0.003 → 0.00 by way of two roundings).
        let lines = price(&request("0.001", "0.001", "12.5", 2, &[(5, 15)])).unwrap();
        assert_eq!(lines[2].description, "Discount (12.5%)");
        assert_eq!(lines[2].amount, "0.00");
        // 50% of 0.30 = 0.15 → 0.15; 50% of 0.05 = 0.025 → 0.02; 50% of 0.07 = 0.035 → 0.04.
        for (cpu, expected) in [(300, "-0.15"), (50, "-0.02"), (70, "-0.04")] {
            let lines = price(&request("0.001", "0", "50", 2, &[(cpu, 0)])).unwrap();
            assert_eq!(lines[2].amount, expected, "cpu {cpu}");
        }
    }

    #[test]
    fn precision_sets_the_decimal_places() {
        let lines = price(&request("2", "0.5", "100", 0, &[(3, 3)])).unwrap();
        assert_eq!(
            cells(&lines),
            [
                ("CPU usage (milli-CPU hours)", "3", "cpu-milli-hour", "2", "6"),
                ("Memory usage (MiB hours)", "3", "mem-mib-hour", "0.5", "2"),
                ("Discount (100%)", "1", "discount", "-8", "-8"),
            ]
        );
        let lines = price(&request("0.0004", "0", "0", 3, &[(1, 0)])).unwrap();
        assert_eq!(lines[0].amount, "0.000");
        let lines = price(&request("1", "0", "0", 3, &[(1, 0)])).unwrap();
        assert_eq!(lines[0].amount, "1.000");
    }

    #[test]
    fn large_usage_stays_exact() {
        let lines =
            price(&request("0.0004", "0.00001", "0", 2, &[(u64::MAX, u64::MAX), (u64::MAX, 0)])).unwrap();
        assert_eq!(lines[0].quantity, "36893488147419103230");
        assert_eq!(lines[0].amount, "14757395258967641.29");
        assert!(!lines[0].amount.contains('e'));
    }

    #[test]
    fn bad_rates_are_errors() {
        for (cpu, mem, discount) in [
            ("abc", "0", "0"),
            ("1e-4", "0", "0"),
            ("", "0", "0"),
            (".5", "0", "0"),
            ("1_000", "0", "0"),
            ("0", "-0.1", "0"),
            ("0", "0", "-1"),
            ("0", "0", "100.01"),
        ] {
            assert!(price(&request(cpu, mem, discount, 2, &[])).is_err(), "{cpu} {mem} {discount}");
        }
        assert!(price(&request("0", "0", "100", 2, &[])).is_ok());
        assert!(price(&request("-0", "0", "0", 2, &[])).is_ok());
        assert!(price(&request("0", "0", "0", 29, &[])).is_err());
    }
}
