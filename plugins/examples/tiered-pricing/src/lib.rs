//! Example pricing plugin: graduated memory tiers.
//!
//! kubeop asks the `pricing` plugin for a tenant's invoice lines. This one prices like the
//! built-in default, except that memory gets cheaper in volume:
//!
//! - the first 1,000,000 MiB-hours of the period cost the tenant's memory rate
//!   (`rates.mem-mib-hour`);
//! - every MiB-hour above that costs half the rate.
//!
//! CPU is `rates.cpu-milli-hour` per milli-CPU hour, and `rates.discount-percent` comes off the
//! total, as in the default.
//!
//! Swapping it in needs no restart: upload the component to the pricing slot and the next
//! invoice uses it. Build it with:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! Money is exact: amounts are `rust_decimal::Decimal`, never floats. Each amount is rounded
//! once, half to even (banker's rounding), to the currency's precision.

// Bindings for the `pricing` world: the `Guest` trait with `price`, the request and line types,
// and the host's `log`. `path` is relative to this crate's Cargo.toml.
wit_bindgen::generate!({
    world: "pricing",
    path: "../../../wit",
});

use kubeop::plugin::host::{Level, log};
use rust_decimal::{Decimal, RoundingStrategy};

/// MiB-hours billed at the full memory rate; above this, half the rate.
const MEMORY_TIER: u64 = 1_000_000;

struct TieredPricing;

impl Guest for TieredPricing {
    fn price(request: PricingRequest) -> Result<Vec<InvoiceLine>, String> {
        let lines = price(&request);
        // An error fails the invoice request (503); say why in kubeop's log too.
        if let Err(err) = &lines {
            log(Level::Warn, &format!("cannot price tenant {}: {err}", request.tenant_id));
        }
        lines
    }
}

export!(TieredPricing);

fn price(request: &PricingRequest) -> Result<Vec<InvoiceLine>, String> {
    // The rates are decimal strings ("0.0004"); refuse anything else rather than guess.
    let rates = &request.rates;
    let cpu_rate = parse_rate("cpu-milli-hour", &rates.cpu_milli_hour)?;
    let mem_rate = parse_rate("mem-mib-hour", &rates.mem_mib_hour)?;
    let discount = parse_rate("discount-percent", &rates.discount_percent)?;
    if discount > Decimal::ONE_HUNDRED {
        return Err(format!("rates.discount-percent {} is more than 100", rates.discount_percent));
    }
    if rates.precision > 28 {
        return Err(format!("rates.precision {} is more than 28", rates.precision));
    }
    let precision = u32::from(rates.precision);

    // Total usage over the period (u128: no overflow however many hours).
    let cpu_milli_hours: u128 = request.usage.iter().map(|hour| u128::from(hour.cpu_milli)).sum();
    let mem_mib_hours: u128 = request.usage.iter().map(|hour| u128::from(hour.mem_mib)).sum();

    let mut lines = Vec::new();
    // The sum of the rounded amounts, which the discount applies to.
    let mut subtotal = Decimal::ZERO;
    let mut add = |line: Line| -> Result<(), String> {
        let (line, amount) = line.finish(precision)?;
        subtotal = subtotal.checked_add(amount).ok_or_else(overflow)?;
        lines.push(line);
        Ok(())
    };

    add(Line::new("CPU usage (milli-CPU hours)", cpu_milli_hours, "cpu-milli-hour", cpu_rate))?;

    // Memory: one line below the threshold, two when the usage crosses it.
    let tier = u128::from(MEMORY_TIER);
    if mem_mib_hours <= tier {
        add(Line::new("Memory usage (MiB hours)", mem_mib_hours, "mem-mib-hour", mem_rate))?;
    } else {
        let half_rate = (mem_rate / Decimal::TWO).normalize(); // exact: 0.00001 / 2 = 0.000005
        add(Line::new(&format!("Memory, first {MEMORY_TIER} MiB-hours"), tier, "mem-mib-hour", mem_rate))?;
        add(Line::new(
            &format!("Memory above {MEMORY_TIER} MiB-hours"),
            mem_mib_hours - tier,
            "mem-mib-hour",
            half_rate,
        ))?;
    }

    // The discount: a negative line, N% of the sum of the amounts above, rounded once.
    if !discount.is_zero() {
        let off = subtotal
            .checked_mul(discount)
            .and_then(|d| d.checked_div(Decimal::ONE_HUNDRED))
            .ok_or_else(overflow)?;
        let amount = round(-off, precision)?.to_string();
        lines.push(InvoiceLine {
            description: format!("Discount ({}%)", discount.normalize()),
            quantity: "1".into(),
            unit: "discount".into(),
            unit_price: amount.clone(),
            amount,
        });
    }
    Ok(lines)
}

/// An invoice line before its amount is computed.
struct Line {
    description: String,
    quantity: u128,
    unit: &'static str,
    unit_price: Decimal,
}

impl Line {
    fn new(description: &str, quantity: u128, unit: &'static str, unit_price: Decimal) -> Self {
        Line { description: description.into(), quantity, unit, unit_price }
    }

    /// The line with its amount (quantity × unit price, rounded), and that amount.
    fn finish(self, precision: u32) -> Result<(InvoiceLine, Decimal), String> {
        let quantity = i128::try_from(self.quantity)
            .ok()
            .and_then(|q| Decimal::try_from_i128_with_scale(q, 0).ok())
            .ok_or_else(overflow)?;
        let amount = round(quantity.checked_mul(self.unit_price).ok_or_else(overflow)?, precision)?;
        let line = InvoiceLine {
            description: self.description,
            quantity: quantity.to_string(),
            unit: self.unit.into(),
            // Decimal's Display is plain notation ("0.000005"), never an exponent.
            unit_price: self.unit_price.to_string(),
            amount: amount.to_string(),
        };
        Ok((line, amount))
    }
}

/// `value` rounded half to even, written with exactly `precision` decimal places.
fn round(value: Decimal, precision: u32) -> Result<Decimal, String> {
    let mut rounded = value.round_dp_with_strategy(precision, RoundingStrategy::MidpointNearestEven);
    rounded.rescale(precision); // pads: 1.2 → 1.20
    if rounded.scale() != precision {
        return Err(overflow());
    }
    if rounded.is_zero() {
        rounded.set_sign_positive(true); // 0.00, not -0.00
    }
    Ok(rounded)
}

/// A rate: a non-negative decimal in plain notation (an optional `-`, digits, an optional `.`
/// and digits), as the WIT's `decimal` type says.
fn parse_rate(name: &str, text: &str) -> Result<Decimal, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let value: Decimal = match (all_digits(int) && all_digits(frac)).then(|| text.parse()) {
        Some(Ok(value)) => value,
        _ => return Err(format!("rates.{name} {text:?} is not a decimal number")),
    };
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("rates.{name} {text} is negative"));
    }
    Ok(value)
}

fn overflow() -> String {
    "an amount is too large to compute".into()
}

// `cargo test` runs these natively (they never call the host's `log`).
#[cfg(test)]
mod tests {
    use super::*;
    use kubeop::plugin::types::{Rates, UsageHour};

    fn request(discount: &str, usage: &[(u64, u64)]) -> PricingRequest {
        PricingRequest {
            tenant_id: "t_1".into(),
            period_start: 0,
            period_end: 3600 * usage.len() as i64,
            rates: Rates {
                cpu_milli_hour: "0.0004".into(),
                mem_mib_hour: "0.00001".into(),
                tier: Some("enterprise".into()),
                discount_percent: discount.into(),
                currency: "EUR".into(),
                precision: 2,
            },
            usage: usage
                .iter()
                .enumerate()
                .map(|(i, &(cpu_milli, mem_mib))| UsageHour { hour: 3600 * i as i64, cpu_milli, mem_mib })
                .collect(),
        }
    }

    fn cells(lines: &[InvoiceLine]) -> Vec<(&str, &str, &str, &str)> {
        lines
            .iter()
            .map(|l| (l.description.as_str(), l.quantity.as_str(), l.unit_price.as_str(), l.amount.as_str()))
            .collect()
    }

    #[test]
    fn below_the_tier_memory_is_one_line() {
        let lines = price(&request("0", &[(1000, 600_000), (0, 400_000)])).unwrap();
        assert_eq!(
            cells(&lines),
            [
                ("CPU usage (milli-CPU hours)", "1000", "0.0004", "0.40"),
                ("Memory usage (MiB hours)", "1000000", "0.00001", "10.00"),
            ]
        );
    }

    #[test]
    fn above_the_tier_memory_is_two_lines_and_the_discount_covers_both() {
        // 2,500,000 MiB-hours: 1,000,000 × 0.00001 = 10.00, 1,500,000 × 0.000005 = 7.50.
        let lines = price(&request("10", &[(1000, 2_000_000), (0, 500_000)])).unwrap();
        assert_eq!(
            cells(&lines),
            [
                ("CPU usage (milli-CPU hours)", "1000", "0.0004", "0.40"),
                ("Memory, first 1000000 MiB-hours", "1000000", "0.00001", "10.00"),
                ("Memory above 1000000 MiB-hours", "1500000", "0.000005", "7.50"),
                ("Discount (10%)", "1", "-1.79", "-1.79"),
            ]
        );
    }

    #[test]
    fn bad_rates_are_errors() {
        let mut bad = request("0", &[]);
        bad.rates.mem_mib_hour = "-1".into();
        assert!(price(&bad).is_err());
        assert!(price(&request("101", &[])).is_err());
        assert!(price(&request("ten", &[])).is_err());
    }
}
