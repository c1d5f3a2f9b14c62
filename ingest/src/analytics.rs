//! Points → Workers Analytics Engine data points.
//!
//! Analytics Engine keeps the raw, per-request view for ad-hoc SQL; the exact
//! per-series aggregates live in D1. A request writes one data point per
//! metric and service (its points summed up): a `writeDataPoint` call is the
//! costly part of this stage, and per-series points would make a request with
//! many series pay 250 calls (the per-invocation limit) where ~20 do.
//!
//! Only one request in `ANALYTICS_ONE_IN` ([`DEFAULT_ONE_IN`]) writes its
//! data points, chosen at random, and each carries that number as its
//! weight (`double7`): `SUM(_sample_interval * double7 * double1)` estimates
//! the count without bias. Analytics Engine bills every data point written
//! ($0.25 per million beyond 10 million a month): one per metric and request
//! was 83 million a month at 2 requests a second of 30 metrics (xtask's W1,
//! $18), one in ten is 8.3 million, inside the included volume.
//!
//! | field | content |
//! | --- | --- |
//! | `index1` | `<tenant>/<metric>`, cut to 96 bytes: sampling is per index, so each tenant's metric is sampled on its own and a noisy one cannot crowd out the rest |
//! | `blob1` | tenant |
//! | `blob2` | metric name (OpenTelemetry spelling, with dots) |
//! | `blob3` | kind: `gauge`, `counter` or `distribution` |
//! | `blob4` | unit |
//! | `blob5` | `service.name` of the points (empty if they have none) |
//! | `double1` | count: gauge samples, counter points, or distribution samples |
//! | `double2` | sum: of samples, or the counters' total increase |
//! | `double3` | min |
//! | `double4` | max |
//! | `double5` | time of the latest point, unix seconds |
//! | `double6` | points summed into this data point |
//! | `double7` | requests this data point stands for: the sampling's one in *n* |
//!
//! A request with more than 250 (metric, service) pairs writes 249 of them
//! and folds the rest into one data point with metric `otel.overflow`, so
//! that `SUM(double1)` stays right.

use proto::normalize::Group;
use proto::point::{Kind, Label, Point, Value};
use std::collections::HashMap;

/// One request in this many writes its data points, unless the
/// `ANALYTICS_ONE_IN` var says otherwise.
pub const DEFAULT_ONE_IN: u32 = 10;

/// Whether the request with this random `seed` writes its data points when
/// one in `one_in` does (every one for 0 or 1).
pub fn sampled(seed: u64, one_in: u32) -> bool {
    seed.is_multiple_of(u64::from(one_in.max(1)))
}

/// The most data points one Worker invocation may write.
pub const MAX_DATA_POINTS: usize = 250;
const MAX_INDEX_BYTES: usize = 96;
const MAX_BLOB_BYTES: usize = 1024;
/// The metric name of the folded remainder.
pub const OVERFLOW_METRIC: &str = "otel.overflow";

/// One Analytics Engine data point, ready to hand to `writeDataPoint`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPoint {
    pub index: String,
    pub blobs: Vec<String>,
    pub doubles: Vec<f64>,
}

#[derive(Clone, Copy)]
struct Summary {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    time_ns: u64,
    points: f64,
}

impl Summary {
    fn of(p: &Point) -> Summary {
        let (count, sum, min, max) = match &p.value {
            Some(Value::Gauge(v)) => (1.0, *v, *v, *v),
            Some(Value::Counter(c)) => (1.0, c.value, c.value, c.value),
            Some(Value::Distribution(d)) => {
                let lo = d.min.into_iter().chain(d.values.iter().copied()).fold(f64::INFINITY, f64::min);
                let hi = d.max.into_iter().chain(d.values.iter().copied()).fold(f64::NEG_INFINITY, f64::max);
                (d.count as f64, d.sum, lo, hi)
            }
            None => (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY),
        };
        Summary { count, sum, min, max, time_ns: p.time_unix_nano, points: 1.0 }
    }

    fn add(&mut self, o: Summary) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.time_ns = self.time_ns.max(o.time_ns);
        self.points += o.points;
    }

    fn doubles(&self, weight: f64) -> Vec<f64> {
        // Analytics Engine stores doubles; an empty distribution has no extremes.
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        vec![self.count, self.sum, finite(self.min), finite(self.max), (self.time_ns / 1_000_000_000) as f64, self.points, weight]
    }
}

/// The data points as one JSON array of the objects `writeDataPoint` takes
/// (`{"indexes": [..], "blobs": [..], "doubles": [..]}`), so that the Worker
/// crosses into JavaScript once per request instead of once per field.
pub fn to_json(points: &[DataPoint]) -> String {
    #[derive(serde::Serialize)]
    struct Js<'a> {
        indexes: [&'a str; 1],
        blobs: &'a [String],
        doubles: &'a [f64],
    }
    let js: Vec<Js<'_>> = points.iter().map(|p| Js { indexes: [&p.index], blobs: &p.blobs, doubles: &p.doubles }).collect();
    serde_json::to_string(&js).unwrap_or_else(|_| "[]".into())
}

/// A point's `service.name`: its own label, else its group's.
fn service<'a>(group: &'a Group, p: &'a Point) -> &'a str {
    let find = |labels: &'a [Label]| labels.iter().find(|l| l.key == "service.name").map(|l| l.value.as_str());
    find(&p.labels).or_else(|| find(&group.labels)).unwrap_or("")
}

/// The data points for one request's points, in first-seen order, each
/// standing for `weight` requests (`double7`).
pub fn data_points(tenant: &str, points: &[Group], weight: f64) -> Vec<DataPoint> {
    let mut order: Vec<(&str, &str, Kind, &str)> = Vec::new();
    let mut groups: HashMap<(&str, &str), (usize, Summary)> = HashMap::new();
    for (g, p) in points.iter().flat_map(|g| g.points.iter().map(move |p| (g, p))) {
        let s = Summary::of(p);
        let key = (p.metric.as_str(), service(g, p));
        match groups.get_mut(&key) {
            Some((_, acc)) => acc.add(s),
            None => {
                groups.insert(key, (order.len(), s));
                order.push((key.0, key.1, p.kind(), p.unit.as_str()));
            }
        }
    }
    let keep = if order.len() > MAX_DATA_POINTS { MAX_DATA_POINTS - 1 } else { order.len() };
    let mut out = Vec::with_capacity(keep + 1);
    let mut overflow: Option<(usize, Summary)> = None;
    for (i, (metric, service, kind, unit)) in order.into_iter().enumerate() {
        let s = groups[&(metric, service)].1;
        if i < keep {
            out.push(DataPoint {
                index: cut(format!("{tenant}/{metric}"), MAX_INDEX_BYTES),
                blobs: vec![
                    tenant.to_owned(),
                    cut(metric.to_owned(), MAX_BLOB_BYTES),
                    kind.as_str().to_owned(),
                    cut(unit.to_owned(), MAX_BLOB_BYTES),
                    cut(service.to_owned(), MAX_BLOB_BYTES),
                ],
                doubles: s.doubles(weight),
            });
        } else {
            match &mut overflow {
                Some((n, acc)) => {
                    *n += 1;
                    acc.add(s);
                }
                None => overflow = Some((1, s)),
            }
        }
    }
    if let Some((n, s)) = overflow {
        out.push(DataPoint {
            index: cut(format!("{tenant}/{OVERFLOW_METRIC}"), MAX_INDEX_BYTES),
            blobs: vec![tenant.to_owned(), OVERFLOW_METRIC.to_owned(), String::new(), String::new(), format!("{n} metrics")],
            doubles: s.doubles(weight),
        });
    }
    out
}

/// Cuts a string to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(points: Vec<Point>) -> Vec<Group> {
        vec![Group { labels: Vec::new(), points }]
    }
    use proto::point::{Counter, Distribution, Label};

    fn point(metric: &str, service: &str, value: Value) -> Point {
        Point {
            label_refs: Vec::new(),
            metric: metric.into(),
            labels: vec![Label { key: "k".into(), value: "x".into() }, Label { key: "service.name".into(), value: service.into() }],
            unit: "ms".into(),
            time_unix_nano: 1_700_000_000_500_000_000,
            value: Some(value),
        }
    }

    #[test]
    fn one_data_point_per_metric_and_service() {
        let points = [
            point("a", "api", Value::Gauge(1.0)),
            point("a", "api", Value::Gauge(3.0)),
            point("a", "web", Value::Gauge(5.0)),
            point("c", "api", Value::Counter(Counter { value: 4.0, monotonic: true, ..Default::default() })),
            point(
                "d",
                "api",
                Value::Distribution(Distribution { count: 3, sum: 9.0, values: vec![2.0, 4.0], counts: vec![1, 2], ..Default::default() }),
            ),
        ];
        let dps = data_points("t", &one(points.to_vec()), 1.0);
        assert_eq!(dps.len(), 4);
        assert_eq!(dps[0].index, "t/a");
        assert_eq!(dps[0].blobs, ["t", "a", "gauge", "ms", "api"]);
        assert_eq!(dps[0].doubles, [2.0, 4.0, 1.0, 3.0, 1_700_000_000.0, 2.0, 1.0]);
        assert_eq!(dps[1].blobs[4], "web");
        assert_eq!(dps[2].blobs[2], "counter");
        assert_eq!(dps[2].doubles[..2], [1.0, 4.0]);
        assert_eq!(dps[3].doubles[..4], [3.0, 9.0, 2.0, 4.0]);
    }

    #[test]
    fn one_request_in_n_writes_and_its_points_weigh_n() {
        let written = |one_in| (0..10_000u64).filter(|&seed| sampled(seed, one_in)).count();
        assert_eq!(written(10), 1_000);
        assert_eq!((written(1), written(0)), (10_000, 10_000));
        let dps = data_points("t", &one(vec![point("a", "api", Value::Gauge(1.0))]), 10.0);
        assert_eq!(dps[0].doubles[6], 10.0);
    }

    #[test]
    fn the_service_may_be_the_groups() {
        let mut p = point("a", "", Value::Gauge(1.0));
        p.labels.retain(|l| l.key != "service.name");
        let group = Group { labels: vec![Label { key: "service.name".into(), value: "api".into() }], points: vec![p] };
        assert_eq!(data_points("t", &[group], 1.0)[0].blobs[4], "api");
    }

    #[test]
    fn more_than_250_metrics_fold_into_an_overflow_point_without_losing_counts() {
        let points: Vec<Point> = (0..600).map(|i| point(&format!("m{i:04}"), "s", Value::Gauge(1.0))).collect();
        let dps = data_points("t", &one(points), 1.0);
        assert_eq!(dps.len(), MAX_DATA_POINTS);
        let last = dps.last().unwrap();
        assert_eq!(last.blobs[1], OVERFLOW_METRIC);
        assert_eq!(last.blobs[4], "351 metrics");
        let total: f64 = dps.iter().map(|d| d.doubles[0]).sum();
        assert_eq!(total, 600.0);
    }

    #[test]
    fn limits_are_respected() {
        let long = "é".repeat(1000);
        let p = point(&long, &"v".repeat(20_000), Value::Gauge(1.0));
        let dp = &data_points("tenant", &one(vec![p]), 1.0)[0];
        assert!(dp.index.len() <= 96);
        assert!(dp.blobs.iter().map(String::len).sum::<usize>() <= 16 * 1024);
        assert!(dp.blobs.len() <= 20 && dp.doubles.len() <= 20);
    }
}
