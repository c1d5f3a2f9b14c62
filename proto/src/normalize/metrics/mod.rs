//! OTLP metrics → points.
//!
//! | OTLP | point |
//! | --- | --- |
//! | Gauge | one `Gauge` sample per data point |
//! | Sum, monotonic or delta | `Counter` (cumulative ones marked so, for the rollup to turn into deltas) |
//! | Sum, non-monotonic and cumulative (an UpDownCounter) | `Gauge`: its value is a level |
//! | Histogram | `Distribution`: each bucket's count at one representative value |
//! | ExponentialHistogram | `Distribution`, likewise |
//! | Summary | `Gauge` `<name>{quantile="φ"}` per quantile, cumulative `Counter`s `<name>.count` and `<name>.sum` |
//!
//! Representative values: an explicit bucket `(lo, hi]` is represented by its
//! midpoint; the open first and last buckets by the midpoint between the
//! finite bound and the data point's `min`/`max` when given (delta only), else
//! by the finite bound. An exponential bucket `(base^i, base^(i+1)]` is
//! represented by its geometric midpoint `base^(i+0.5)`, clamped to
//! `[min, max]` for delta points. Cumulative points keep representatives that
//! depend on the bucket layout alone, so the rollup can subtract successive
//! points bucket by bucket. Aggregation temporality 0 (unspecified) is invalid
//! and rejected.

use super::labels::{count, labels_from, with_point, MAX_LABELS};
use super::Normalized;
use crate::otlp::common::KeyValue;
use crate::otlp::metrics::{
    metric::Data, number_data_point, temporality, ExponentialHistogramDataPoint, ExportMetricsServiceRequest, HistogramDataPoint,
    NumberDataPoint, SummaryDataPoint,
};
use crate::point::{Counter, Distribution, Label, Point, Value};

/// Longest metric name, in bytes: the OpenTelemetry API's limit for
/// instrument names (255 characters, ASCII). Every point carries its name,
/// and the catalog keys on it.
pub const MAX_NAME_BYTES: usize = 255;

/// Normalizes a metrics export. `now_unix_nano` stands in for a data point's
/// missing (zero) timestamp. Takes the request by value so that attribute
/// strings move into labels instead of being copied.
pub fn normalize(req: ExportMetricsServiceRequest, now_unix_nano: u64) -> Normalized {
    let mut out = Normalized::default();
    for rm in req.resource_metrics {
        let resource: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
        for sm in rm.scope_metrics {
            let scope: &[KeyValue] = sm.scope.as_ref().map_or(&[], |s| &s.attributes);
            // Resource and scope labels once per scope, not once per point.
            let shared = match labels_from(&[resource, scope]) {
                Ok(l) => l,
                Err(e) => {
                    let n: u64 = sm.metrics.iter().map(|m| count_points(m.data.as_ref()).max(1)).sum();
                    out.reject(n, || format!("resource or scope: {e}"));
                    continue;
                }
            };
            out.truncated += shared.truncated as u64;
            out.group(shared.labels.clone());
            for metric in sm.metrics {
                let ctx = Ctx { name: &metric.name, unit: &metric.unit, shared: &shared.labels, now_unix_nano };
                ctx.metric(metric.data, &mut out);
            }
        }
    }
    out
}

struct Ctx<'a> {
    name: &'a str,
    unit: &'a str,
    shared: &'a [Label],
    now_unix_nano: u64,
}

impl Ctx<'_> {
    fn metric(&self, data: Option<Data>, out: &mut Normalized) {
        let name = self.name;
        if name.is_empty() {
            out.reject(count_points(data.as_ref()).max(1), || "metric without a name".into());
            return;
        }
        if name.len() > MAX_NAME_BYTES {
            let shown: String = name.chars().take(32).collect();
            out.reject(count_points(data.as_ref()).max(1), || format!("metric {shown}…: name longer than {MAX_NAME_BYTES} bytes"));
            return;
        }
        match data {
            None => out.reject(1, || format!("metric {name}: no data")),
            Some(Data::Gauge(g)) => {
                for dp in g.data_points {
                    match number(&dp) {
                        Ok(v) => self.emit(dp.attributes, dp.time_unix_nano, Value::Gauge(v), out),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Sum(s)) => {
                let cumulative = match cumulative(s.aggregation_temporality) {
                    Ok(c) => c,
                    Err(e) => return out.reject(s.data_points.len() as u64, || format!("metric {name}: {e}")),
                };
                for dp in s.data_points {
                    match number(&dp) {
                        Ok(v) if s.is_monotonic && v < 0.0 => {
                            out.reject(1, || format!("metric {name}: negative value {v} of a monotonic sum"))
                        }
                        Ok(v) if cumulative && !s.is_monotonic => self.emit(dp.attributes, dp.time_unix_nano, Value::Gauge(v), out),
                        Ok(v) => {
                            let c = Counter {
                                value: v,
                                monotonic: s.is_monotonic,
                                cumulative,
                                start_time_unix_nano: if cumulative { dp.start_time_unix_nano } else { 0 },
                            };
                            self.emit(dp.attributes, dp.time_unix_nano, Value::Counter(c), out);
                        }
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Histogram(h)) => {
                let cumulative = match cumulative(h.aggregation_temporality) {
                    Ok(c) => c,
                    Err(e) => return out.reject(h.data_points.len() as u64, || format!("metric {name}: {e}")),
                };
                for dp in h.data_points {
                    match explicit_histogram(&dp, cumulative) {
                        Ok(d) => self.emit(dp.attributes, dp.time_unix_nano, Value::Distribution(d), out),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                let cumulative = match cumulative(h.aggregation_temporality) {
                    Ok(c) => c,
                    Err(e) => return out.reject(h.data_points.len() as u64, || format!("metric {name}: {e}")),
                };
                for dp in h.data_points {
                    match exponential_histogram(&dp, cumulative) {
                        Ok(d) => self.emit(dp.attributes, dp.time_unix_nano, Value::Distribution(d), out),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Summary(s)) => {
                for dp in s.data_points {
                    self.summary(dp, out);
                }
            }
        }
    }

    /// A Summary's quantiles become gauges labelled `quantile`, as Prometheus
    /// exposes summaries; its count and sum become cumulative counters. One
    /// summary data point is one data point: all of it is kept, or none.
    fn summary(&self, dp: SummaryDataPoint, out: &mut Normalized) {
        let name = self.name;
        if !dp.sum.is_finite() || dp.quantile_values.iter().any(|q| !q.value.is_finite() || !(0.0..=1.0).contains(&q.quantile)) {
            return out.reject(1, || format!("metric {name}: summary with a non-finite sum, value or quantile"));
        }
        let time = match out.time(dp.time_unix_nano, self.now_unix_nano) {
            Ok(t) => t,
            Err(e) => return out.reject(1, || format!("metric {name}: {e}")),
        };
        let labeled = match with_point(self.shared, dp.attributes) {
            Ok(l) => l,
            Err(e) => return out.reject(1, || format!("metric {name}: {e}")),
        };
        let labels = labeled.labels;
        let quantile_slot = labels.binary_search_by(|l| l.key.as_str().cmp("quantile"));
        if quantile_slot.is_err() && !dp.quantile_values.is_empty() && count(self.shared, &labels) >= MAX_LABELS {
            return out.reject(1, || format!("metric {name}: no room for the quantile label within {MAX_LABELS} labels"));
        }
        out.truncated += labeled.truncated as u64;
        let point = |metric: String, labels: Vec<Label>, value: Value| Point {
            label_refs: Vec::new(),
            metric,
            labels,
            unit: self.unit.to_owned(),
            time_unix_nano: time,
            value: Some(value),
        };
        let total =
            |v: f64| Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: dp.start_time_unix_nano });
        out.push(point(format!("{name}.count"), labels.clone(), total(dp.count as f64)));
        out.push(point(format!("{name}.sum"), labels.clone(), total(dp.sum)));
        for q in &dp.quantile_values {
            let mut with_quantile = labels.clone();
            let value = q.quantile.to_string();
            match quantile_slot {
                Ok(i) => with_quantile[i].value = value,
                Err(i) => with_quantile.insert(i, Label { key: "quantile".into(), value }),
            }
            out.push(point(name.to_owned(), with_quantile, Value::Gauge(q.value)));
        }
    }

    /// Adds the point, or rejects it for its labels or its time.
    fn emit(&self, attributes: Vec<KeyValue>, time_unix_nano: u64, value: Value, out: &mut Normalized) {
        let name = self.name;
        let time = match out.time(time_unix_nano, self.now_unix_nano) {
            Ok(t) => t,
            Err(e) => return out.reject(1, || format!("metric {name}: {e}")),
        };
        match with_point(self.shared, attributes) {
            Ok(l) => {
                out.truncated += l.truncated as u64;
                out.push(Point {
                    label_refs: Vec::new(),
                    metric: name.to_owned(),
                    labels: l.labels,
                    unit: self.unit.to_owned(),
                    time_unix_nano: time,
                    value: Some(value),
                });
            }
            Err(e) => out.reject(1, || format!("metric {name}: {e}")),
        }
    }
}

fn count_points(data: Option<&Data>) -> u64 {
    (match data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }) as u64
}

/// Whether a temporality is cumulative; unspecified (0) is invalid.
fn cumulative(t: i32) -> Result<bool, &'static str> {
    match t {
        temporality::DELTA => Ok(false),
        temporality::CUMULATIVE => Ok(true),
        _ => Err("aggregation temporality is missing or invalid"),
    }
}

fn number(dp: &NumberDataPoint) -> Result<f64, String> {
    let v = match dp.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => return Err("data point without a value".into()),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("non-finite value {v}"))
    }
}

fn finite_opt(name: &str, v: Option<f64>) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !x.is_finite() => Err(format!("non-finite {name} {x}")),
        _ => Ok(v),
    }
}

fn explicit_histogram(dp: &HistogramDataPoint, cumulative: bool) -> Result<Distribution, String> {
    let (min, max) = extremes(dp.min, dp.max, cumulative)?;
    let sum = finite_opt("sum", dp.sum)?.unwrap_or(0.0);
    let bounds = &dp.explicit_bounds;
    if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!("non-finite bucket bound {b}"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bucket bounds are not strictly increasing".into());
    }
    let start_time_unix_nano = if cumulative { dp.start_time_unix_nano } else { 0 };
    let mut d = Distribution { count: dp.count, sum, min, max, cumulative, start_time_unix_nano, ..Default::default() };
    if dp.bucket_counts.is_empty() {
        return Ok(d);
    }
    if dp.bucket_counts.len() != bounds.len() + 1 {
        return Err(format!("{} bucket counts for {} bounds (expected {})", dp.bucket_counts.len(), bounds.len(), bounds.len() + 1));
    }
    let total = dp.bucket_counts.iter().try_fold(0u64, |a, &c| a.checked_add(c));
    if total != Some(dp.count) {
        return Err(format!("bucket counts add up to {total:?}, not the count {}", dp.count));
    }
    for (i, &n) in dp.bucket_counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let lo = if i == 0 { None } else { bounds.get(i - 1).copied() };
        let hi = bounds.get(i).copied();
        let rep = match (lo, hi) {
            (Some(lo), Some(hi)) => (lo + hi) / 2.0,
            (None, Some(hi)) => min.map_or(hi, |m| (m.min(hi) + hi) / 2.0),
            (Some(lo), None) => max.map_or(lo, |m| (m.max(lo) + lo) / 2.0),
            (None, None) => min.zip(max).map_or(sum / dp.count as f64, |(a, b)| (a + b) / 2.0),
        };
        let rep = clamp(rep, min, max);
        d.values.push(rep);
        d.counts.push(n);
    }
    Ok(d)
}

fn exponential_histogram(dp: &ExponentialHistogramDataPoint, cumulative: bool) -> Result<Distribution, String> {
    let (min, max) = extremes(dp.min, dp.max, cumulative)?;
    let sum = finite_opt("sum", dp.sum)?.unwrap_or(0.0);
    if !(-10..=20).contains(&dp.scale) {
        return Err(format!("exponential histogram scale {} outside -10..=20", dp.scale));
    }
    let base = 2f64.powf(2f64.powi(-dp.scale));
    let start_time_unix_nano = if cumulative { dp.start_time_unix_nano } else { 0 };
    let mut d = Distribution {
        count: dp.count,
        sum,
        min,
        max,
        cumulative,
        start_time_unix_nano,
        exponential_scale: Some(dp.scale),
        ..Default::default()
    };
    let mut total = dp.zero_count;
    if dp.zero_count > 0 {
        d.values.push(0.0);
        d.counts.push(dp.zero_count);
    }
    for (sign, buckets) in [(1.0, &dp.positive), (-1.0, &dp.negative)] {
        let Some(b) = buckets else { continue };
        for (k, &n) in b.bucket_counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let index = f64::from(b.offset) + k as f64;
            let rep = sign * base.powf(index + 0.5);
            if !rep.is_finite() {
                return Err(format!("bucket index {index} overflows at scale {}", dp.scale));
            }
            d.values.push(clamp(rep, min, max));
            d.counts.push(n);
            total = total.checked_add(n).ok_or("bucket counts overflow")?;
        }
    }
    if total != dp.count {
        return Err(format!("bucket counts add up to {total}, not the count {}", dp.count));
    }
    Ok(d)
}

/// A data point's min and max: validated, and dropped for cumulative points,
/// whose extremes cover the whole series and not the interval.
fn extremes(min: Option<f64>, max: Option<f64>, cumulative: bool) -> Result<(Option<f64>, Option<f64>), String> {
    let (min, max) = (finite_opt("min", min)?, finite_opt("max", max)?);
    Ok(if cumulative { (None, None) } else { (min, max) })
}

fn clamp(v: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let v = min.map_or(v, |m| v.max(m));
    max.map_or(v, |m| v.min(m))
}

#[cfg(test)]
mod tests;
