//! Points → Workers Analytics Engine data points.
//!
//! Analytics Engine keeps the raw, per-request view for ad-hoc SQL; the exact
//! aggregates live in D1. One data point is written per series per request
//! (the request's points of that series summed up), which keeps a request
//! within the 250 writes one invocation may make.
//!
//! | field | content |
//! | --- | --- |
//! | `index1` | `<tenant>/<metric>`, cut to 96 bytes: sampling is per index, so each tenant's metric is sampled on its own and a noisy one cannot crowd out the rest |
//! | `blob1` | tenant |
//! | `blob2` | metric name (OpenTelemetry spelling, with dots) |
//! | `blob3` | kind: `gauge`, `counter` or `distribution` |
//! | `blob4` | unit |
//! | `blob5` | labels as a JSON object with sorted keys (cut to fit 16 KB of blobs) |
//! | `double1` | count: gauge samples, counter points, or distribution samples |
//! | `double2` | sum: of samples, or the counter's total increase |
//! | `double3` | min |
//! | `double4` | max |
//! | `double5` | time of the series' latest point in the request, unix seconds |
//!
//! A request with more than 250 series writes 249 of them and folds the rest
//! into one data point with metric `otel.overflow` whose labels give the number
//! of series folded, so that `SUM(double1)` stays right.

use proto::point::{labels_json, Kind, Point, Value};
use std::collections::BTreeMap;

/// The most data points one Worker invocation may write.
pub const MAX_DATA_POINTS: usize = 250;
const MAX_INDEX_BYTES: usize = 96;
/// Blobs may total 16 KB; leave room for the short ones.
const MAX_LABELS_BYTES: usize = 15 * 1024;
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
        Summary { count, sum, min, max, time_ns: p.time_unix_nano }
    }

    fn add(&mut self, o: Summary) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.time_ns = self.time_ns.max(o.time_ns);
    }

    fn doubles(&self) -> Vec<f64> {
        // Analytics Engine stores doubles; an empty distribution has no extremes.
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        vec![self.count, self.sum, finite(self.min), finite(self.max), (self.time_ns / 1_000_000_000) as f64]
    }
}

/// The data points for one request's points.
pub fn data_points(tenant: &str, points: &[Point]) -> Vec<DataPoint> {
    let mut series: BTreeMap<(&str, &[proto::point::Label]), (Kind, &str, Summary)> = BTreeMap::new();
    for p in points {
        let s = Summary::of(p);
        series
            .entry((p.metric.as_str(), p.labels.as_slice()))
            .and_modify(|(_, _, acc)| acc.add(s))
            .or_insert((p.kind(), p.unit.as_str(), s));
    }
    let keep = if series.len() > MAX_DATA_POINTS { MAX_DATA_POINTS - 1 } else { series.len() };
    let mut out = Vec::with_capacity(keep + 1);
    let mut overflow: Option<(usize, Summary)> = None;
    for (i, ((metric, labels), (kind, unit, s))) in series.into_iter().enumerate() {
        if i < keep {
            out.push(DataPoint {
                index: index(tenant, metric),
                blobs: vec![
                    tenant.to_owned(),
                    metric.to_owned(),
                    kind.as_str().to_owned(),
                    unit.to_owned(),
                    cut(labels_json(labels), MAX_LABELS_BYTES),
                ],
                doubles: s.doubles(),
            });
        } else {
            let o = overflow.get_or_insert((0, s));
            if o.0 > 0 {
                o.1.add(s);
            }
            o.0 += 1;
        }
    }
    if let Some((n, s)) = overflow {
        out.push(DataPoint {
            index: index(tenant, OVERFLOW_METRIC),
            blobs: vec![
                tenant.to_owned(),
                OVERFLOW_METRIC.to_owned(),
                String::new(),
                String::new(),
                format!("{{\"series\":\"{n}\"}}"),
            ],
            doubles: s.doubles(),
        });
    }
    out
}

fn index(tenant: &str, metric: &str) -> String {
    cut(format!("{tenant}/{metric}"), MAX_INDEX_BYTES)
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
    use proto::point::{Counter, Distribution, Label};

    fn point(metric: &str, label: &str, value: Value) -> Point {
        Point {
            metric: metric.into(),
            labels: vec![Label { key: "k".into(), value: label.into() }],
            unit: "ms".into(),
            time_unix_nano: 1_700_000_000_500_000_000,
            value: Some(value),
        }
    }

    #[test]
    fn one_data_point_per_series() {
        let points = [
            point("a", "x", Value::Gauge(1.0)),
            point("a", "x", Value::Gauge(3.0)),
            point("a", "y", Value::Gauge(5.0)),
            point("c", "x", Value::Counter(Counter { value: 4.0, monotonic: true, ..Default::default() })),
            point("d", "x", Value::Distribution(Distribution { count: 3, sum: 9.0, values: vec![2.0, 4.0], counts: vec![1, 2], ..Default::default() })),
        ];
        let dps = data_points("t", &points);
        assert_eq!(dps.len(), 4);
        assert_eq!(dps[0].index, "t/a");
        assert_eq!(dps[0].blobs, ["t", "a", "gauge", "ms", r#"{"k":"x"}"#]);
        assert_eq!(dps[0].doubles, [2.0, 4.0, 1.0, 3.0, 1_700_000_000.0]);
        assert_eq!(dps[2].blobs[2], "counter");
        assert_eq!(dps[2].doubles[..2], [1.0, 4.0]);
        assert_eq!(dps[3].doubles[..4], [3.0, 9.0, 2.0, 4.0]);
    }

    #[test]
    fn more_than_250_series_fold_into_an_overflow_point_without_losing_counts() {
        let points: Vec<Point> = (0..600).map(|i| point("m", &format!("{i:04}"), Value::Gauge(1.0))).collect();
        let dps = data_points("t", &points);
        assert_eq!(dps.len(), MAX_DATA_POINTS);
        let last = dps.last().unwrap();
        assert_eq!(last.blobs[1], OVERFLOW_METRIC);
        assert_eq!(last.blobs[4], r#"{"series":"351"}"#);
        let total: f64 = dps.iter().map(|d| d.doubles[0]).sum();
        assert_eq!(total, 600.0);
    }

    #[test]
    fn limits_are_respected() {
        let long = "é".repeat(100);
        let mut p = point(&long, &"v".repeat(20_000), Value::Gauge(1.0));
        p.labels.push(Label { key: "z".into(), value: "w".repeat(20_000) });
        let dp = &data_points("tenant", &[p])[0];
        assert!(dp.index.len() <= 96);
        assert!(dp.blobs.iter().map(String::len).sum::<usize>() <= 16 * 1024);
        assert!(dp.blobs.len() <= 20 && dp.doubles.len() <= 20);
    }
}
