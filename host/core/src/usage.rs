//! Usage points as the ingest API receives them, validated point by point so that a refused
//! batch can name every bad point. A batch is read from its bytes one point at a time: no tree
//! of the whole body is ever built, and reading stops keeping points past the limit.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::TenantId;

/// The start of an hour, in seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(i64);

impl Hour {
    pub fn containing(at: DateTime<Utc>) -> Self {
        Self(at.timestamp().div_euclid(3600) * 3600)
    }

    pub fn from_seconds(seconds: i64) -> Self {
        Self(seconds.div_euclid(3600) * 3600)
    }

    pub fn seconds(self) -> i64 {
        self.0
    }

    pub fn start(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).expect("hours within chrono's range")
    }
}

/// One metered sample: a tenant's CPU and memory use, added into the hour it falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePoint {
    pub tenant: TenantId,
    /// When it was measured, as given.
    pub at: DateTime<Utc>,
    pub hour: Hour,
    pub cpu_milli: i64,
    pub mem_mib: i64,
}

/// Which points are accepted: their time, their size, and how many in one batch.
#[derive(Debug, Clone, Copy)]
pub struct UsageWindow {
    pub now: DateTime<Utc>,
    pub max_age: Duration,
    pub max_future: Duration,
    /// The most one point may carry: far above any real workload (a million CPUs for an hour),
    /// so that no tenant can push an hourly total towards 64 bits.
    pub max_cpu_milli: i64,
    pub max_mem_mib: i64,
    pub max_points: usize,
}

/// Why one point was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PointError {
    /// Position of the point in the request array, from 0.
    pub index: usize,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not JSON at all, with the parser's reason.
    Malformed(String),
    NotAnArray,
    TooMany {
        count: usize,
        max: usize,
    },
    /// Some of the `count` points are invalid, each named.
    Points {
        count: usize,
        errors: Vec<PointError>,
    },
}

/// An hourly total that would leave 64 bits: which tenant and hour, and the points adding to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketOverflow {
    pub tenant: TenantId,
    pub hour: Hour,
    pub indices: Vec<usize>,
}

/// A batch in which every point is valid.
#[derive(Debug, Clone)]
pub struct UsageBatch {
    pub points: Vec<UsagePoint>,
}

const FIELDS: [&str; 4] = ["ts", "tenant_id", "cpu_milli", "mem_mib"];

impl UsageBatch {
    /// Reads a batch from the request body: a JSON array of points.
    pub fn parse(body: &[u8], window: &UsageWindow) -> Result<Self, BatchError> {
        let items = split_array(body, window.max_points)?;
        let mut points = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (index, item) in items.iter().enumerate() {
            // One point's tree at a time, dropped as soon as it is read.
            let parsed = serde_json::from_str::<Value>(item.get())
                .map_err(|e| e.to_string())
                .and_then(|value| parse_point(&value, window));
            match parsed {
                Ok(point) => points.push(point),
                Err(error) => errors.push(PointError { index, error }),
            }
        }
        match errors.is_empty() {
            true => Ok(Self { points }),
            false => Err(BatchError::Points { count: items.len(), errors }),
        }
    }

    /// A fingerprint of the points, whatever the JSON's spacing or key order: a retry with the
    /// same Idempotency-Key must carry the same points.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for point in &self.points {
            let line =
                format!("{}|{}|{}|{}\n", point.tenant, point.at.to_rfc3339(), point.cpu_milli, point.mem_mib);
            hash.update(line.as_bytes());
        }
        hex::encode(hash.finalize())
    }

    /// The points summed per tenant and hour, as they are added to the stored buckets; an error
    /// names a sum that would leave 64 bits.
    pub fn buckets(&self) -> Result<Vec<(TenantId, Hour, i64, i64)>, BucketOverflow> {
        let mut sums: BTreeMap<(&TenantId, Hour), (i64, i64)> = BTreeMap::new();
        for point in &self.points {
            let sum = sums.entry((&point.tenant, point.hour)).or_default();
            match (sum.0.checked_add(point.cpu_milli), sum.1.checked_add(point.mem_mib)) {
                (Some(cpu), Some(mem)) => *sum = (cpu, mem),
                _ => return Err(self.overflow(&point.tenant, point.hour)),
            }
        }
        Ok(sums.into_iter().map(|((tenant, hour), (cpu, mem))| (tenant.clone(), hour, cpu, mem)).collect())
    }

    /// The overflow of one tenant's hour, with the points of this batch that fall in it.
    pub fn overflow(&self, tenant: &TenantId, hour: Hour) -> BucketOverflow {
        let indices = (self.points.iter().enumerate())
            .filter(|(_, p)| &p.tenant == tenant && p.hour == hour)
            .map(|(index, _)| index)
            .collect();
        BucketOverflow { tenant: tenant.clone(), hour, indices }
    }
}

/// The elements of a JSON array as raw text, keeping at most `max` (and counting the rest
/// without keeping them, so the answer can say how many were sent).
fn split_array(body: &[u8], max: usize) -> Result<Vec<&serde_json::value::RawValue>, BatchError> {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    struct Elements(usize);

    impl<'de> Visitor<'de> for Elements {
        type Value = (Vec<&'de RawValue>, usize);

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of points")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut kept = Vec::new();
            let mut count = 0;
            loop {
                if count < self.0 {
                    match seq.next_element::<&'de RawValue>()? {
                        Some(item) => kept.push(item),
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                count += 1;
            }
            Ok((kept, count))
        }
    }

    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'[') {
        return Err(BatchError::NotAnArray);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let (items, count) = deserializer
        .deserialize_seq(Elements(max))
        .and_then(|parsed| deserializer.end().map(|()| parsed))
        .map_err(|e: serde_json::Error| BatchError::Malformed(e.to_string()))?;
    if count > max {
        return Err(BatchError::TooMany { count, max });
    }
    Ok(items)
}

fn parse_point(item: &Value, window: &UsageWindow) -> Result<UsagePoint, String> {
    let object = item.as_object().ok_or_else(|| {
        "a point is an object: {\"ts\", \"tenant_id\", \"cpu_milli\", \"mem_mib\"}".to_owned()
    })?;
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(format!("unknown field `{unknown}` (expected ts, tenant_id, cpu_milli, mem_mib)"));
    }
    let field = |name: &str| object.get(name).ok_or_else(|| format!("missing `{name}`"));
    let ts = field("ts")?.as_str().ok_or("ts: expected an RFC 3339 timestamp string")?;
    let at = parse_timestamp(ts)?;
    if at < window.now - window.max_age {
        return Err(format!("ts {ts} is more than {} days old", window.max_age.num_days()));
    }
    if at > window.now + window.max_future {
        return Err(format!(
            "ts {ts} is more than {} seconds in the future",
            window.max_future.num_seconds()
        ));
    }
    let tenant = field("tenant_id")?.as_str().ok_or("tenant_id: expected a tenant id string")?;
    let tenant = TenantId::parse(tenant).map_err(|e| format!("tenant_id: {e}"))?;
    let cpu_milli = amount("cpu_milli", field("cpu_milli")?, window.max_cpu_milli)?;
    let mem_mib = amount("mem_mib", field("mem_mib")?, window.max_mem_mib)?;
    Ok(UsagePoint { tenant, at, hour: Hour::containing(at), cpu_milli, mem_mib })
}

/// RFC 3339 with a zone (`Z` or an offset); a time without one is ambiguous.
pub fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, String> {
    match DateTime::parse_from_rfc3339(raw) {
        Ok(at) => Ok(at.with_timezone(&Utc)),
        Err(_) if chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(format!("ts `{raw}` has no time zone: end it with Z or an offset such as +02:00"))
        }
        Err(_) => Err(format!("ts `{raw}` is not an RFC 3339 timestamp such as 2026-11-28T13:00:00Z")),
    }
}

fn amount(name: &str, value: &Value, max: i64) -> Result<i64, String> {
    let Value::Number(number) = value else {
        return Err(format!("{name}: expected a whole number, not {value}"));
    };
    let too_large = || format!("{name}: {number} is over the most one point may carry, {max}");
    if let Some(n) = number.as_i64() {
        return match n {
            n if n < 0 => Err(format!("{name}: {n} is negative")),
            n if n > max => Err(too_large()),
            n => Ok(n),
        };
    }
    match number.as_f64() {
        _ if number.as_u64().is_some() => return Err(too_large()),
        Some(f) if f.fract() == 0.0 && f > 0.0 => return Err(too_large()),
        Some(f) if f.fract() == 0.0 && f < 0.0 => return Err(format!("{name}: {number} is negative")),
        _ => {}
    }
    Err(format!("{name}: {number} is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window() -> UsageWindow {
        UsageWindow {
            now: "2026-11-28T13:30:00Z".parse().unwrap(),
            max_age: Duration::days(35),
            max_future: Duration::seconds(300),
            max_cpu_milli: 1_000_000_000,
            max_mem_mib: 1_000_000_000,
            max_points: 100,
        }
    }

    fn parse(body: &Value, max_points: usize) -> Result<UsageBatch, BatchError> {
        UsageBatch::parse(body.to_string().as_bytes(), &UsageWindow { max_points, ..window() })
    }

    fn errors(body: Value) -> Vec<PointError> {
        match parse(&body, 10) {
            Err(BatchError::Points { errors, .. }) => errors,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn points_land_in_their_utc_hour() {
        let tenant = TenantId::generate();
        let body = json!([
            {"ts": "2026-11-28T12:59:59Z", "tenant_id": tenant, "cpu_milli": 100, "mem_mib": 200},
            {"ts": "2026-11-28T14:10:00+02:00", "tenant_id": tenant, "cpu_milli": 50, "mem_mib": 0},
            {"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1},
        ]);
        let batch = parse(&body, 10).unwrap();
        let noon = Hour::containing("2026-11-28T12:00:00Z".parse().unwrap());
        assert_eq!(
            batch.buckets().unwrap(),
            vec![(tenant.clone(), noon, 150, 200), (tenant, Hour(noon.0 + 3600), 1, 1)]
        );
    }

    #[test]
    fn every_bad_point_is_named() {
        let tenant = TenantId::generate();
        let ok = json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1});
        let mut cases: Vec<(Value, &str)> = vec![
            (json!("x"), "object"),
            (json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1}), "missing `mem_mib`"),
            (
                json!({"ts": "2026-11-28T13:00:00", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1}),
                "no time zone",
            ),
            (json!({"ts": "yesterday", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1}), "RFC 3339"),
            (
                json!({"ts": "2026-10-01T00:00:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1}),
                "35 days old",
            ),
            (
                json!({"ts": "2026-11-28T13:40:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1}),
                "future",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": "acme", "cpu_milli": 1, "mem_mib": 1}),
                "tenant_id",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": -1, "mem_mib": 1}),
                "negative",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1.5, "mem_mib": 1}),
                "whole number",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": "1", "mem_mib": 1}),
                "whole number",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 9223372036854775808u64, "mem_mib": 1}),
                "most one point may carry",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": i64::MAX, "mem_mib": 1}),
                "most one point may carry, 1000000000",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1_000_000_001}),
                "mem_mib",
            ),
            (
                json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": 1, "mem_mib": 1, "gpu": 1}),
                "unknown field `gpu`",
            ),
        ];
        cases.insert(0, (ok.clone(), ""));
        let body = Value::Array(cases.iter().map(|(point, _)| point.clone()).collect());
        let found = match parse(&body, 100) {
            Err(BatchError::Points { errors, .. }) => errors,
            other => panic!("{other:?}"),
        };
        assert_eq!(found.iter().map(|e| e.index).collect::<Vec<_>>(), (1..cases.len()).collect::<Vec<_>>());
        for error in &found {
            assert!(error.error.contains(cases[error.index].1), "{error:?}");
        }
        assert_eq!(errors(json!([ok, 5])).len(), 1);
    }

    #[test]
    fn batches_are_arrays_of_bounded_size() {
        assert_eq!(parse(&json!({"ts": 1}), 10).unwrap_err(), BatchError::NotAnArray);
        let many = Value::Array(vec![json!({}); 11]);
        assert_eq!(parse(&many, 10).unwrap_err(), BatchError::TooMany { count: 11, max: 10 });
        let cut = UsageBatch::parse(b"[{\"ts\": ", &window()).unwrap_err();
        assert!(matches!(cut, BatchError::Malformed(_)), "{cut:?}");
        let trailing = UsageBatch::parse(b"[] []", &window()).unwrap_err();
        assert!(matches!(trailing, BatchError::Malformed(_)), "{trailing:?}");
    }

    #[test]
    fn sums_that_leave_64_bits_name_the_tenant_hour_and_points() {
        let tenant = TenantId::generate();
        let other = TenantId::generate();
        let big = UsageWindow { max_cpu_milli: i64::MAX, ..window() };
        let point = |tenant: &TenantId, cpu: i64| json!({"ts": "2026-11-28T13:00:00Z", "tenant_id": tenant, "cpu_milli": cpu, "mem_mib": 1});
        let body = json!([point(&other, 1), point(&tenant, i64::MAX), point(&tenant, 1)]).to_string();
        let batch = UsageBatch::parse(body.as_bytes(), &big).unwrap();
        let overflow = batch.buckets().unwrap_err();
        assert_eq!(overflow.tenant, tenant);
        assert_eq!(overflow.hour.start().to_rfc3339(), "2026-11-28T13:00:00+00:00");
        assert_eq!(overflow.indices, [1, 2]);
    }
}
