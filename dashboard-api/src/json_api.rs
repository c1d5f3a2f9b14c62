//! The plain JSON API, for tools that do not speak PromQL: the tenant's
//! metrics, their series, and percentiles of a metric over a time range.
//! Pure functions over the catalog and fetched series; names and labels in
//! the exposed spelling, as in the Prometheus API.

use crate::catalog::Entry;
use crate::error::ApiError;
use crate::query::series::SeriesData;
use crate::query::Times;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One metric of the catalog: its exposed name, kind, unit and series.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Metric {
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub series: f64,
}

/// `GET /api/v1/json/metrics`: each metric with its kind, unit and number
/// of series, sorted by name (one line per name: the kind and unit of its
/// first row if they differ).
pub fn metrics(rows: &[Metric]) -> Value {
    let mut out: BTreeMap<&str, (&str, &str, f64)> = BTreeMap::new();
    for m in rows {
        out.entry(&m.name).or_insert((&m.kind, &m.unit, 0.0)).2 += m.series;
    }
    json!({ "metrics": out.into_iter().map(|(name, (kind, unit, n))| json!({ "name": name, "kind": kind, "unit": unit, "series": n as u64 })).collect::<Vec<_>>() })
}

/// `GET /api/v1/json/series?metric=…`: the metric's label sets.
pub fn series(entries: &[Entry], metric: &str) -> Value {
    let list: Vec<Value> = entries.iter().filter(|e| e.name == metric).map(|e| labels(&e.labels)).collect();
    json!({ "metric": metric, "series": list })
}

fn labels(l: &[(String, String)]) -> Value {
    Value::Object(l.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// Quantiles from a `quantiles=0.5,0.99` parameter.
pub fn parse_quantiles(text: &str) -> Result<Vec<f64>, ApiError> {
    text.split(',')
        .map(|q| match q.trim().parse::<f64>() {
            Ok(phi) if (0.0..=1.0).contains(&phi) => Ok(phi),
            _ => Err(ApiError::BadData(format!("quantiles must be numbers in [0, 1], separated by commas: {q:?}"))),
        })
        .collect()
}

/// `GET /api/v1/json/percentiles`: per series, a point per step holding
/// the count, sum, min and max of the samples of the step's window
/// [t − step, t) and the asked quantiles of them (exact merges of the
/// stored histograms). Steps without samples are left out; points are
/// sorted by time.
pub fn percentiles(metric: &str, series: &[SeriesData], times: &Times, quantiles: &[f64]) -> Value {
    let w = times.default_window();
    let mut out = Vec::new();
    for s in series {
        let mut points = Vec::new();
        for t in times.each() {
            let Some(agg) = s.window(t, w) else { continue };
            if agg.samples.as_ref().is_none_or(|h| h.is_empty()) {
                continue;
            }
            let q: serde_json::Map<String, Value> = quantiles.iter().map(|&phi| (phi.to_string(), json!(agg.quantile(phi)))).collect();
            points.push(json!({ "t": crate::prom::time(t), "count": agg.count, "sum": agg.sum.value(), "min": agg.min, "max": agg.max, "quantiles": q }));
        }
        out.push(json!({ "labels": labels(&s.labels), "points": points }));
    }
    json!({ "metric": metric, "step": times.step, "series": out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::select::Field;
    use proto::aggregate::Aggregate;
    use proto::point::{Kind, Point, Value as PV};

    fn entry(name: &str, kind: Kind, route: &str) -> Entry {
        Entry { name: name.into(), labels: vec![("route".into(), route.into())], kind, unit: "ms".into() }
    }

    #[test]
    fn metrics_and_series() {
        let e = vec![entry("lat", Kind::Distribution, "/a"), entry("lat", Kind::Distribution, "/b"), entry("req", Kind::Counter, "/a")];
        let m = |name: &str, kind: &str, series: f64| Metric { name: name.into(), kind: kind.into(), unit: "ms".into(), series };
        assert_eq!(
            metrics(&[m("lat", "distribution", 2.0), m("req", "counter", 1.0)]),
            json!({"metrics":[{"name":"lat","kind":"distribution","unit":"ms","series":2},{"name":"req","kind":"counter","unit":"ms","series":1}]})
        );
        assert_eq!(series(&e, "lat")["series"], json!([{"route":"/a"},{"route":"/b"}]));
    }

    #[test]
    fn percentiles_per_step_sorted_by_time() {
        let mut buckets = Vec::new();
        for (start, lo) in [(60i64, 1), (120, 101)] {
            let mut a = Aggregate::empty(true, "ms");
            for v in lo..lo + 100 {
                a.add_point(&Point {
                    time_unix_nano: start as u64 * 1_000_000_000,
                    value: Some(PV::Gauge(f64::from(v))),
                    ..Default::default()
                });
            }
            buckets.push((start, a));
        }
        let s = SeriesData { prom_name: "lat".into(), labels: vec![], kind: Kind::Gauge, field: Field::Value, buckets };
        let times = Times::range(60.0, 240.0, 60.0).unwrap();
        let v = percentiles("lat", &[s], &times, &parse_quantiles("0.5, 0.99").unwrap());
        let points = v["series"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), 2, "the steps at 60 and 240 have no samples");
        assert_eq!(points[0], json!({"t":120,"count":100,"sum":5050.0,"min":1.0,"max":100.0,"quantiles":{"0.5":50.0,"0.99":99.0}}));
        assert_eq!(points[1]["t"], 180);
        assert_eq!(points[1]["quantiles"]["0.5"], 150.0);
        assert!(parse_quantiles("0.5,2").is_err());
        assert!(parse_quantiles("p99").is_err());
    }
}
