//! OTLP metrics → points.
//!
//! | OTLP | point |
//! | --- | --- |
//! | Gauge | one `Gauge` sample per data point |
//! | Sum, delta | `Counter` with the data point's value as the increase |
//! | Histogram, delta | `Distribution`: each bucket's count at one representative value |
//! | ExponentialHistogram, delta | `Distribution`, likewise |
//!
//! Representative values: an explicit bucket `(lo, hi]` is represented by its
//! midpoint; the open first and last buckets by the midpoint between the
//! finite bound and the data point's `min`/`max` when given, else by the
//! finite bound. An exponential bucket `(base^i, base^(i+1)]` is represented
//! by its geometric midpoint `base^(i+0.5)`. Cumulative temporality and
//! Summary are not accepted yet and are reported as rejected.

use super::{labels_from, Normalized};
use crate::otlp::common::KeyValue;
use crate::otlp::metrics::{
    metric::Data, number_data_point, temporality, ExponentialHistogramDataPoint,
    ExportMetricsServiceRequest, HistogramDataPoint, NumberDataPoint,
};
use crate::point::{Counter, Distribution, Label, Point, Value};

/// Normalizes a metrics export. `now_unix_nano` stands in for a data point's
/// missing (zero) timestamp.
pub fn normalize(req: &ExportMetricsServiceRequest, now_unix_nano: u64) -> Normalized {
    let mut out = Normalized::default();
    for rm in &req.resource_metrics {
        let resource: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                let ctx = Ctx { name: &metric.name, unit: &metric.unit, resource, now_unix_nano };
                ctx.metric(metric.data.as_ref(), &mut out);
            }
        }
    }
    out
}

struct Ctx<'a> {
    name: &'a str,
    unit: &'a str,
    resource: &'a [KeyValue],
    now_unix_nano: u64,
}

impl Ctx<'_> {
    fn metric(&self, data: Option<&Data>, out: &mut Normalized) {
        let name = self.name;
        if name.is_empty() {
            out.reject(count_points(data).max(1), || "metric without a name".into());
            return;
        }
        match data {
            None => out.reject(1, || format!("metric {name}: no data")),
            Some(Data::Gauge(g)) => {
                for dp in &g.data_points {
                    match number(dp) {
                        Ok(v) => out.points.push(self.point(&dp.attributes, dp.time_unix_nano, Value::Gauge(v))),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Sum(s)) => {
                if let Err(e) = delta_only(s.aggregation_temporality) {
                    out.reject(s.data_points.len() as u64, || format!("metric {name}: {e}"));
                    return;
                }
                for dp in &s.data_points {
                    match number(dp) {
                        Ok(v) if s.is_monotonic && v < 0.0 => {
                            out.reject(1, || format!("metric {name}: negative increase {v} of a monotonic sum"))
                        }
                        Ok(v) => {
                            let c = Counter { delta: v, monotonic: s.is_monotonic };
                            out.points.push(self.point(&dp.attributes, dp.time_unix_nano, Value::Counter(c)));
                        }
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Histogram(h)) => {
                if let Err(e) = delta_only(h.aggregation_temporality) {
                    out.reject(h.data_points.len() as u64, || format!("metric {name}: {e}"));
                    return;
                }
                for dp in &h.data_points {
                    match explicit_histogram(dp) {
                        Ok(d) => out.points.push(self.point(&dp.attributes, dp.time_unix_nano, Value::Distribution(d))),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                if let Err(e) = delta_only(h.aggregation_temporality) {
                    out.reject(h.data_points.len() as u64, || format!("metric {name}: {e}"));
                    return;
                }
                for dp in &h.data_points {
                    match exponential_histogram(dp) {
                        Ok(d) => out.points.push(self.point(&dp.attributes, dp.time_unix_nano, Value::Distribution(d))),
                        Err(e) => out.reject(1, || format!("metric {name}: {e}")),
                    }
                }
            }
            Some(Data::Summary(s)) => out.reject(s.data_points.len() as u64, || {
                format!("metric {name}: Summary data points are not supported yet")
            }),
        }
    }

    fn point(&self, attributes: &[KeyValue], time_unix_nano: u64, value: Value) -> Point {
        let labels: Vec<Label> = labels_from(&[self.resource, attributes]);
        Point {
            metric: self.name.to_owned(),
            labels,
            unit: self.unit.to_owned(),
            time_unix_nano: if time_unix_nano == 0 { self.now_unix_nano } else { time_unix_nano },
            value: Some(value),
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

fn delta_only(t: i32) -> Result<(), &'static str> {
    match t {
        temporality::DELTA => Ok(()),
        temporality::CUMULATIVE => Err("cumulative temporality is not supported yet; export with delta temporality"),
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

fn explicit_histogram(dp: &HistogramDataPoint) -> Result<Distribution, String> {
    let min = finite_opt("min", dp.min)?;
    let max = finite_opt("max", dp.max)?;
    let sum = finite_opt("sum", dp.sum)?.unwrap_or(0.0);
    let bounds = &dp.explicit_bounds;
    if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!("non-finite bucket bound {b}"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bucket bounds are not strictly increasing".into());
    }
    let mut d = Distribution { count: dp.count, sum, min, max, ..Default::default() };
    if dp.bucket_counts.is_empty() {
        return Ok(d);
    }
    if dp.bucket_counts.len() != bounds.len() + 1 {
        return Err(format!(
            "{} bucket counts for {} bounds (expected {})",
            dp.bucket_counts.len(),
            bounds.len(),
            bounds.len() + 1
        ));
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

fn exponential_histogram(dp: &ExponentialHistogramDataPoint) -> Result<Distribution, String> {
    let min = finite_opt("min", dp.min)?;
    let max = finite_opt("max", dp.max)?;
    let sum = finite_opt("sum", dp.sum)?.unwrap_or(0.0);
    if !(-10..=20).contains(&dp.scale) {
        return Err(format!("exponential histogram scale {} outside -10..=20", dp.scale));
    }
    let base = 2f64.powf(2f64.powi(-dp.scale));
    let mut d = Distribution { count: dp.count, sum, min, max, ..Default::default() };
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

fn clamp(v: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let v = min.map_or(v, |m| v.max(m));
    max.map_or(v, |m| v.min(m))
}

#[cfg(test)]
mod tests;
