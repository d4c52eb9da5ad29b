//! CronJob schedules (`spec.schedule`), accepted exactly when the Kubernetes API server would
//! accept them: its validation parses the schedule with robfig/cron v3's `ParseStandard` (five
//! fields or a descriptor such as `@hourly` or `@every 2h`) and refuses `TZ=`/`CRON_TZ=` in it.
//! A little stricter than robfig where robfig takes input that is surely a mistake: an empty
//! list element (`1,,2`), `*` as the start of a range (`*-5`), a sign before a number (`+5`),
//! and a duration of zero or less after `@every` (robfig silently runs those every second).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::Serialize;

use super::Invalid;

#[cfg(feature = "sqlx")]
crate::sqlx_impls::text_column!(CronSchedule);

const MAX_SCHEDULE: usize = 256;

/// A Kubernetes CronJob schedule, kept as written (trimmed), since Kubernetes stores it as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CronSchedule(String);

/// Why a schedule was refused; the message is shown to the API caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

impl From<CronError> for Invalid {
    fn from(error: CronError) -> Self {
        Invalid(error.0)
    }
}

impl utoipa::PartialSchema for CronSchedule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A Kubernetes CronJob schedule: five fields (minute 0-59, hour 0-23, day of month \
                 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT), each `*`, `?`, `N`, \
                 `N-M` or a comma-separated list of these, optionally with `/step`; or one of \
                 @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, \
                 `@every <duration>` (such as `@every 1h30m`). Times are in the CronJob's time \
                 zone; `TZ=` and `CRON_TZ=` are not allowed here.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_SCHEDULE))
            .examples([serde_json::json!("0 3 * * 1-5")])
            .into()
    }
}

impl utoipa::ToSchema for CronSchedule {}

impl CronSchedule {
    pub fn parse(raw: &str) -> Result<Self, CronError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(CronError("the schedule is empty".into()));
        }
        let length = text.chars().count();
        if length > MAX_SCHEDULE {
            return Err(CronError(format!(
                "the schedule is {length} characters long; at most {MAX_SCHEDULE} are allowed"
            )));
        }
        if let Some(bad) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(CronError(format!(
                "the schedule contains the control character U+{:04X}; only printable characters, \
                 spaces and tabs are allowed",
                u32::from(bad)
            )));
        }
        Spec::parse(text)
            .map_err(|why| CronError(format!("`{text}` is not a valid cron schedule: {why}")))?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the schedule next fires strictly after `t`, read in UTC (a CronJob without a
    /// `timeZone` runs in the controller manager's zone, UTC on most clusters), the way robfig
    /// computes it: whole minutes; a day matches its day of month *and* its day of week when
    /// either field starts with `*` or `?` (and has no step above 1), otherwise either one; an
    /// `@every` duration is rounded down to whole seconds (at least one) and counted from `t`
    /// without its fraction of a second. `None` when nothing matches within five years (such as
    /// `0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match Spec::parse(&self.0).ok()? {
            Spec::Every(delay) => t.with_nanosecond(0)?.checked_add_signed(delay),
            Spec::Fields(fields) => next_match(&fields, t.naive_utc()).map(|next| next.and_utc()),
        }
    }
}

impl std::fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CronSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One of the five fields: its name in messages, its bounds, and the names it accepts for its
/// values (the `i`-th name is `min + i`).
struct Field {
    name: &'static str,
    min: u64,
    max: u64,
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[], names_hint: "" };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[], names_hint: "" };
const DAY_OF_MONTH: Field = Field { name: "day of month", min: 1, max: 31, names: &[], names_hint: "" };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    names_hint: "a month name (JAN-DEC)",
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    names_hint: "a day name (SUN-SAT)",
};
const FIELDS: [Field; 5] = [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];

/// Set in a field's bits when it starts with `*` or `?` (without a step above 1): robfig then
/// requires both day of month and day of week to match instead of either.
const STAR: u64 = 1 << 63;

const DESCRIPTORS: &str = "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or \
                           `@every <duration>`";

/// A parsed schedule: the matching values of each field as bits (minute, hour, day of month,
/// month, day of week), or a fixed delay.
enum Spec {
    Fields([u64; 5]),
    Every(TimeDelta),
}

impl Spec {
    /// `text` is trimmed, non-empty and free of control characters but tabs.
    fn parse(text: &str) -> Result<Self, String> {
        // Kubernetes refuses any schedule containing `TZ`; no valid schedule otherwise has it.
        if text.contains("TZ") {
            return Err("a time zone cannot be set in the schedule (`TZ=` or `CRON_TZ=`); use the \
                        CronJob's timeZone field instead"
                .into());
        }
        if text.starts_with('@') {
            return parse_descriptor(text);
        }
        let parts: Vec<&str> = text.split([' ', '\t']).filter(|part| !part.is_empty()).collect();
        if parts.len() != FIELDS.len() {
            return Err(format!(
                "expected 5 fields (minute, hour, day of month, month, day of week) separated by \
                 spaces, found {}",
                parts.len()
            ));
        }
        let mut bits = [0; 5];
        for ((slot, field), part) in bits.iter_mut().zip(&FIELDS).zip(parts) {
            *slot = parse_field(field, part).map_err(|why| format!("{}: {why}", field.name))?;
        }
        Ok(Spec::Fields(bits))
    }
}

fn parse_descriptor(text: &str) -> Result<Spec, String> {
    let first = |field: &Field| 1u64 << field.min;
    let all = |field: &Field| range_bits(field.min, field.max, 1) | STAR;
    let fields = match text {
        "@yearly" | "@annually" => {
            [first(&MINUTE), first(&HOUR), first(&DAY_OF_MONTH), first(&MONTH), all(&DAY_OF_WEEK)]
        }
        "@monthly" => [first(&MINUTE), first(&HOUR), first(&DAY_OF_MONTH), all(&MONTH), all(&DAY_OF_WEEK)],
        "@weekly" => [first(&MINUTE), first(&HOUR), all(&DAY_OF_MONTH), all(&MONTH), first(&DAY_OF_WEEK)],
        "@daily" | "@midnight" => {
            [first(&MINUTE), first(&HOUR), all(&DAY_OF_MONTH), all(&MONTH), all(&DAY_OF_WEEK)]
        }
        "@hourly" => [first(&MINUTE), all(&HOUR), all(&DAY_OF_MONTH), all(&MONTH), all(&DAY_OF_WEEK)],
        _ => return parse_every(text),
    };
    Ok(Spec::Fields(fields))
}

fn parse_every(text: &str) -> Result<Spec, String> {
    let raw = match text.strip_prefix("@every") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            match rest.strip_prefix(' ') {
                Some(raw) if !raw.is_empty() && !raw.starts_with(char::is_whitespace) => raw,
                _ => return Err("write `@every`, one space and a duration, such as `@every 1h30m`".into()),
            }
        }
        _ => return Err(format!("unknown descriptor `{text}`; use {DESCRIPTORS}")),
    };
    let nanos = go_duration(raw).map_err(|why| {
        format!(
            "@every: `{raw}` is not a duration ({why}); write a number and a unit (ns, us, ms, s, m, h), \
             such as 90s, 1h30m or 1.5h"
        )
    })?;
    if nanos <= 0 {
        return Err(format!("@every: the duration `{raw}` must be greater than zero"));
    }
    // robfig runs at least every second, and only on whole seconds.
    const SECOND: i64 = 1_000_000_000;
    Ok(Spec::Every(TimeDelta::seconds(nanos.max(SECOND) / SECOND)))
}

/// A comma-separated list of `*`, `?`, `N` or `N-M`, each optionally with `/step`.
fn parse_field(field: &Field, text: &str) -> Result<u64, String> {
    let mut bits = 0;
    for element in text.split(',') {
        if element.is_empty() {
            return Err(format!("`{text}` has an empty element in its comma-separated list"));
        }
        bits |= parse_element(field, element)?;
    }
    Ok(bits)
}

fn parse_element(field: &Field, element: &str) -> Result<u64, String> {
    let (range, step) = match element.split_once('/') {
        None => (element, None),
        Some((_, step)) if step.contains('/') => {
            return Err(format!("`{element}` has more than one `/`"));
        }
        Some((range, step)) => match number(step) {
            None if step.is_empty() => return Err(format!("`{element}` is missing the step after `/`")),
            None => return Err(format!("the step `{step}` in `{element}` is not a number")),
            Some(0) => return Err(format!("the step in `{element}` must be at least 1")),
            Some(step) => (range, Some(step)),
        },
    };
    let (start, end, star) = if range == "*" || range == "?" {
        (field.min, field.max, true)
    } else {
        match range.split_once('-') {
            // `N/step` means `N-max/step`.
            None => {
                let value = value(field, range, element)?;
                (value, if step.is_some() { field.max } else { value }, false)
            }
            Some((_, high)) if high.contains('-') => {
                return Err(format!("`{element}` has more than one `-`"));
            }
            Some((low, high)) => {
                let (low, high) = (value(field, low, element)?, value(field, high, element)?);
                if low > high {
                    return Err(format!("the range `{range}` starts after it ends"));
                }
                (low, high, false)
            }
        }
    };
    let step = step.unwrap_or(1);
    let star = if star && step == 1 { STAR } else { 0 };
    Ok(range_bits(start, end, step) | star)
}

/// A number or name within the field's bounds.
fn value(field: &Field, text: &str, element: &str) -> Result<u64, String> {
    if let Some(index) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(field.min + index as u64);
    }
    let Some(value) = number(text) else {
        return Err(if text.is_empty() {
            format!("`{element}` is missing a number")
        } else if text == "*" || text == "?" {
            format!("`{element}`: `{text}` cannot be part of a range")
        } else if field.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!("`{text}` is not a number or {}", field.names_hint)
        });
    };
    if value < field.min || value > field.max {
        return Err(format!("{text} is out of range {}-{}", field.min, field.max));
    }
    Ok(value)
}

/// Decimal digits only; too many of them read as `u64::MAX` (out of every range).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Bits `start`, `start + step`, … up to `end` (all at most 63).
fn range_bits(start: u64, end: u64, step: u64) -> u64 {
    let mut bits = 0;
    let mut value = start;
    while value <= end {
        bits |= 1u64 << value;
        value = value.saturating_add(step);
    }
    bits
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
fn go_duration(orig: &str) -> Result<i64, &'static str> {
    const LIMIT: u64 = 1 << 63;
    const TOO_LARGE: &str = "too large";
    let (negative, mut rest) = match orig.strip_prefix(['-', '+']) {
        Some(rest) => (orig.starts_with('-'), rest),
        None => (false, orig),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("nothing after the sign");
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err("expected a number");
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for digit in rest[..digits].bytes() {
            if whole > LIMIT / 10 {
                return Err(TOO_LARGE);
            }
            whole = whole * 10 + u64::from(digit - b'0');
            if whole > LIMIT {
                return Err(TOO_LARGE);
            }
        }
        rest = &rest[digits..];
        // Go keeps the digits of a fraction that fit and ignores the rest.
        let (mut fraction, mut scale, mut has_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for digit in after_dot[..fraction_digits].bytes() {
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(digit - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            has_fraction = fraction_digits > 0;
            rest = &after_dot[fraction_digits..];
        }
        if digits == 0 && !has_fraction {
            return Err("expected a number");
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            "" => return Err("missing unit"),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err("unknown unit"),
        };
        rest = &rest[unit_len..];
        if whole > LIMIT / unit {
            return Err(TOO_LARGE);
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // As Go does: in floating point, truncated (always less than one `unit`).
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(TOO_LARGE);
            }
        }
        total = total.checked_add(value).filter(|total| *total <= LIMIT).ok_or(TOO_LARGE)?;
    }
    if negative {
        // `LIMIT` itself is `i64::MIN`.
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| TOO_LARGE)
}

/// The first whole minute strictly after `after` that the fields match, within five years.
fn next_match(fields: &[u64; 5], after: NaiveDateTime) -> Option<NaiveDateTime> {
    let [minutes, hours, days, months, weekdays] = *fields;
    let has = |bits: u64, value: u32| bits & (1 << value) != 0;
    let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0);
    let mut t = after.with_second(0)?.with_nanosecond(0)?.checked_add_signed(TimeDelta::minutes(1))?;
    let last_year = t.year() + 5;
    while t.year() <= last_year {
        if !has(months, t.month()) {
            let (year, month) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
            t = midnight(NaiveDate::from_ymd_opt(year, month, 1)?)?;
            continue;
        }
        let day = has(days, t.day());
        let weekday = has(weekdays, t.weekday().num_days_from_sunday());
        let day_matches = if (days | weekdays) & STAR != 0 { day && weekday } else { day || weekday };
        if !day_matches {
            t = midnight(t.date().succ_opt()?)?;
        } else if !has(hours, t.hour()) {
            t = t.with_minute(0)?.checked_add_signed(TimeDelta::hours(1))?;
        } else if !has(minutes, t.minute()) {
            t = t.checked_add_signed(TimeDelta::minutes(1))?;
        } else {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(schedule: &str, after: &str) -> Option<String> {
        let next = CronSchedule::parse(schedule).unwrap().next_after(at(after));
        next.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    #[test]
    fn accepts_the_kubernetes_documentation_examples() {
        for ok in [
            "0 0 13 * 5",
            "*/5 * * * *",
            "0 3 * * 1-5",
            "@hourly",
            "@every 2h",
            "0 22 * * 1-5",
            "5 4 * * sun",
            "0 0,12 1 */2 *",
            "? * * * *",
        ] {
            assert_eq!(CronSchedule::parse(ok).map(|s| s.as_str().to_owned()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn accepts_what_robfig_accepts() {
        for ok in [
            "59 23 31 12 6",
            "0 0 1 1 0",
            "0-59/15 0-23 1-31 1-12 0-6",
            "5/15 * * * *",
            "0 9 * JAN-mar MON-FRI",
            "0 9 * dec Sat",
            "0 0 * * mon/2",
            "*/1 * * * *",
            "*/61 * * * *",
            "00 07 * * *",
            "1,2,3-5,10-20/3 * * * *",
            "0 0 30 2 *",
            "0\t0  *   * *",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@every 1h30m",
            "@every 90s",
            "@every 1.5h",
            "@every 500ms",
            "@every 10µs",
            "@every 1ns",
            "@every +1m",
            "@every .5s",
            "@every 2562047h",
        ] {
            assert!(CronSchedule::parse(ok).is_ok(), "{ok:?}: {:?}", CronSchedule::parse(ok));
        }
    }

    #[test]
    fn keeps_the_schedule_as_written_but_trimmed() {
        let schedule = CronSchedule::parse("  0 3 * * Mon-Fri \t").unwrap();
        assert_eq!(schedule.as_str(), "0 3 * * Mon-Fri");
        assert_eq!(schedule.to_string(), "0 3 * * Mon-Fri");
        assert_eq!(CronSchedule::parse(" @hourly\n").unwrap().as_str(), "@hourly");
    }

    #[test]
    fn refuses_bad_schedules_saying_which_field_and_why() {
        let cases = [
            (
                "0 * * *",
                "expected 5 fields (minute, hour, day of month, month, day of week) separated by spaces, found 4",
            ),
            (
                "0 0 * * * *",
                "expected 5 fields (minute, hour, day of month, month, day of week) separated by spaces, found 6",
            ),
            ("60 * * * *", "minute: 60 is out of range 0-59"),
            ("* 24 * * *", "hour: 24 is out of range 0-23"),
            ("* * 0 * *", "day of month: 0 is out of range 1-31"),
            ("* * * 13 *", "month: 13 is out of range 1-12"),
            ("* * * * 7", "day of week: 7 is out of range 0-6"),
            ("* * * * 8", "day of week: 8 is out of range 0-6"),
            ("*/0 * * * *", "minute: the step in `*/0` must be at least 1"),
            ("5-1 * * * *", "minute: the range `5-1` starts after it ends"),
            ("@fortnightly", "unknown descriptor `@fortnightly`; use @yearly, @annually"),
            ("@every 0s", "@every: the duration `0s` must be greater than zero"),
            ("@every -1h", "@every: the duration `-1h` must be greater than zero"),
            ("TZ=UTC 0 * * * *", "use the CronJob's timeZone field"),
            ("CRON_TZ=UTC 0 * * * *", "use the CronJob's timeZone field"),
            ("", "the schedule is empty"),
            ("   ", "the schedule is empty"),
            ("1,,2 * * * *", "minute: `1,,2` has an empty element in its comma-separated list"),
            ("1, * * * *", "minute: `1,` has an empty element"),
            ("* * * * 5-7", "day of week: 7 is out of range 0-6"),
            ("* * * * sun-8", "day of week: 8 is out of range 0-6"),
            ("* * * foo *", "month: `foo` is not a number or a month name (JAN-DEC)"),
            ("* * * * funday", "day of week: `funday` is not a number or a day name (SUN-SAT)"),
            ("jan * * * *", "minute: `jan` is not a number"),
            ("* * * jan-dec/x *", "month: the step `x` in `jan-dec/x` is not a number"),
            ("*/ * * * *", "minute: `*/` is missing the step after `/`"),
            ("/5 * * * *", "minute: `/5` is missing a number"),
            ("1- * * * *", "minute: `1-` is missing a number"),
            ("1-2-3 * * * *", "minute: `1-2-3` has more than one `-`"),
            ("*/2/3 * * * *", "minute: `*/2/3` has more than one `/`"),
            ("*-5 * * * *", "minute: `*-5`: `*` cannot be part of a range"),
            ("+5 * * * *", "minute: `+5` is not a number"),
            ("-5 * * * *", "minute: `-5` is missing a number"),
            ("99999999999999999999999 * * * *", "minute: 99999999999999999999999 is out of range 0-59"),
            ("0 0\u{a0}* * * *", "hour: `0\u{a0}*` is not a number"),
            ("@HOURLY", "unknown descriptor `@HOURLY`"),
            ("@hourly 0", "unknown descriptor `@hourly 0`"),
            ("@every", "write `@every`, one space and a duration"),
            ("@every  1h", "`@every`, one space and a duration"),
            ("@every\t1h", "`@every`, one space and a duration"),
            ("@every 1x", "@every: `1x` is not a duration (unknown unit)"),
            ("@every 1", "@every: `1` is not a duration (missing unit)"),
            ("@every 1h 30m", "@every: `1h 30m` is not a duration (unknown unit)"),
            ("@every 0", "@every: the duration `0` must be greater than zero"),
            ("@every 3000000h", "@every: `3000000h` is not a duration (too large)"),
            ("@every .s", "@every: `.s` is not a duration (expected a number)"),
        ];
        for (raw, why) in cases {
            let err = CronSchedule::parse(raw).unwrap_err().to_string();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
        let err = CronSchedule::parse("60 * * * *").unwrap_err().to_string();
        assert_eq!(err, "`60 * * * *` is not a valid cron schedule: minute: 60 is out of range 0-59");
        let err = CronSchedule::parse("TZ=UTC 0 * * * *").unwrap_err().to_string();
        assert!(err.contains("timeZone"), "{err}");
    }

    #[test]
    fn refuses_long_input_and_control_characters_without_echoing_them() {
        let long = format!("0 0 * * {}", "1,".repeat(130) + "1");
        let err = CronSchedule::parse(&long).unwrap_err().to_string();
        assert!(err.contains("at most 256"), "{err}");
        assert!(!err.contains("1,1"), "{err}");
        let err = CronSchedule::parse("0 0 * *\n*").unwrap_err().to_string();
        assert_eq!(
            err,
            "the schedule contains the control character U+000A; only printable characters, spaces \
             and tabs are allowed"
        );
        assert!(CronSchedule::parse("0 0 * * \u{7f}").is_err());
    }

    #[test]
    fn reads_go_durations_like_go() {
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(go_duration("1h1h"), Ok(7_200_000_000_000));
        assert_eq!(go_duration("2us"), Ok(2_000));
        assert_eq!(go_duration("2μs"), Ok(2_000));
        assert_eq!(go_duration("1.s"), Ok(1_000_000_000));
        assert_eq!(go_duration("-1.5m"), Ok(-90_000_000_000));
        assert_eq!(go_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(go_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert_eq!(go_duration("9223372036854775808ns"), Err("too large"));
        assert_eq!(go_duration("0.0000000001ns"), Ok(0));
        for bad in ["", "-", "h", "1", "1H", ".", "1.h.", "1e3s", " 1s"] {
            assert!(go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serializes_as_the_string_and_deserializes_through_parse() {
        let schedule = CronSchedule::parse("*/5 * * * *").unwrap();
        assert_eq!(serde_json::to_string(&schedule).unwrap(), "\"*/5 * * * *\"");
        let back: CronSchedule = serde_json::from_str("\" */5 * * * * \"").unwrap();
        assert_eq!(back, schedule);
        let err = serde_json::from_str::<CronSchedule>("\"* * * * 7\"").unwrap_err().to_string();
        assert!(err.contains("day of week: 7 is out of range 0-6"), "{err}");
        assert_eq!(Invalid::from(CronError("x".into())), Invalid::new("x"));
    }

    #[test]
    fn next_after_follows_robfig() {
        // Strictly after, on whole minutes.
        assert_eq!(next("*/5 * * * *", "2024-01-01T12:03:10Z").as_deref(), Some("2024-01-01T12:05:00Z"));
        assert_eq!(next("*/5 * * * *", "2024-01-01T12:05:00Z").as_deref(), Some("2024-01-01T12:10:00Z"));
        assert_eq!(next("*/5 * * * *", "2024-01-01T23:59:59.9Z").as_deref(), Some("2024-01-02T00:00:00Z"));
        // Friday 2024-01-05 after its run: next Monday.
        assert_eq!(next("0 3 * * 1-5", "2024-01-05T04:00:00Z").as_deref(), Some("2024-01-08T03:00:00Z"));
        assert_eq!(next("5 4 * * sun", "2024-01-01T00:00:00Z").as_deref(), Some("2024-01-07T04:05:00Z"));
        // Day of month and day of week both restricted: either matches (the 13th or a Friday).
        assert_eq!(next("0 0 13 * 5", "2024-01-01T00:00:00Z").as_deref(), Some("2024-01-05T00:00:00Z"));
        assert_eq!(next("0 0 13 * 5", "2024-01-12T00:00:00Z").as_deref(), Some("2024-01-13T00:00:00Z"));
        // A step above 1 drops the `*`: either matches; `*` alone: both must.
        assert_eq!(next("0 0 1 * */2", "2024-01-02T00:00:00Z").as_deref(), Some("2024-01-04T00:00:00Z"));
        assert_eq!(next("0 0 1 * *", "2024-01-02T00:00:00Z").as_deref(), Some("2024-02-01T00:00:00Z"));
        assert_eq!(next("0 0 1 * */1", "2024-01-02T00:00:00Z").as_deref(), Some("2024-02-01T00:00:00Z"));
        assert_eq!(next("0 0,12 1 */2 *", "2024-01-01T12:00:00Z").as_deref(), Some("2024-03-01T00:00:00Z"));
        assert_eq!(next("0 0 29 2 *", "2024-03-01T00:00:00Z").as_deref(), Some("2028-02-29T00:00:00Z"));
        assert_eq!(next("@yearly", "2024-06-15T10:00:00Z").as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(next("@weekly", "2024-01-01T00:00:00Z").as_deref(), Some("2024-01-07T00:00:00Z"));
        assert_eq!(next("@hourly", "2024-01-01T23:30:00Z").as_deref(), Some("2024-01-02T00:00:00Z"));
        assert_eq!(next("59 23 31 12 *", "2024-12-31T23:59:00Z").as_deref(), Some("2025-12-31T23:59:00Z"));
        assert_eq!(next("0 0 30 2 *", "2024-01-01T00:00:00Z"), None);
        // `@every`: from `t` without its fraction, in whole seconds, at least one.
        assert_eq!(next("@every 2h", "2024-01-01T10:15:30.5Z").as_deref(), Some("2024-01-01T12:15:30Z"));
        assert_eq!(next("@every 1.5s", "2024-01-01T10:15:30Z").as_deref(), Some("2024-01-01T10:15:31Z"));
        assert_eq!(next("@every 500ms", "2024-01-01T10:15:30Z").as_deref(), Some("2024-01-01T10:15:31Z"));
    }
}
