//! Series as fetched from D1, in the exposed (Prometheus) spelling.

use proto::aggregate::Aggregate;
use proto::point::Kind;

use super::select::Field;

/// One series and its aggregates over the query's time range.
#[derive(Clone, Debug)]
pub struct SeriesData {
    /// The exposed name the selection asked for (`x_count` for the count of
    /// the series `x`).
    pub prom_name: String,
    /// Exposed label names and values, sorted by name.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    /// Which of the series' numbers the selection reads.
    pub field: Field,
    /// (bucket start in unix seconds, aggregate), sorted by start, all of one
    /// resolution.
    pub buckets: Vec<(i64, Aggregate)>,
}

impl SeriesData {
    /// Sorts the buckets by start and merges those that start together: a
    /// minute can come from several places (blocks of one hour written at
    /// different times, head rows, minute rows of before migration 0011).
    pub fn settle(&mut self) {
        self.buckets.sort_by_key(|(s, _)| *s);
        let mut out: Vec<(i64, Aggregate)> = Vec::with_capacity(self.buckets.len());
        for (start, agg) in self.buckets.drain(..) {
            match out.last_mut() {
                Some((s, last)) if *s == start => last.merge(&agg),
                _ => out.push((start, agg)),
            }
        }
        self.buckets = out;
    }

    /// The merge of the buckets of the window ending at `t`: those that
    /// start in [t − w, t). Each bucket belongs to the one window that holds
    /// its start, so consecutive windows of a range query partition the
    /// buckets and nothing is counted twice.
    pub fn window(&self, t: f64, w: f64) -> Option<Aggregate> {
        let from = self.buckets.partition_point(|(s, _)| (*s as f64) < t - w);
        let to = self.buckets.partition_point(|(s, _)| (*s as f64) < t);
        let mut merged: Option<Aggregate> = None;
        for (_, agg) in self.buckets.get(from..to)? {
            match &mut merged {
                None => merged = Some(agg.clone()),
                Some(m) => m.merge(agg),
            }
        }
        merged
    }
}

/// Exposed labels from the catalog's JSON (OpenTelemetry spelling).
pub fn labels_from_json(json: &str) -> Vec<(String, String)> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let mut labels: Vec<(String, String)> = map
        .into_iter()
        .map(|(k, v)| (proto::names::prom_name(&k), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
        .collect();
    labels.sort();
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Point, Value};

    fn agg(v: f64) -> Aggregate {
        let mut a = Aggregate::empty(true, "");
        a.add_point(&Point { value: Some(Value::Gauge(v)), ..Default::default() });
        a
    }

    #[test]
    fn a_window_merges_the_buckets_that_start_in_it() {
        let s = SeriesData {
            prom_name: "m".into(),
            labels: vec![],
            kind: Kind::Gauge,
            field: Field::Value,
            buckets: vec![(0, agg(1.0)), (60, agg(2.0)), (120, agg(3.0)), (300, agg(4.0))],
        };
        // [90, 150) holds the start of the minute at 120 only.
        assert_eq!(s.window(150.0, 60.0).unwrap().count, 1);
        // [0, 180) and [180, 360): consecutive windows split the buckets.
        assert_eq!(s.window(180.0, 180.0).unwrap().count, 3);
        assert_eq!(s.window(360.0, 180.0).unwrap().count, 1);
        assert!(s.window(1000.0, 60.0).is_none());
    }

    #[test]
    fn settling_sorts_and_merges_buckets_of_one_start() {
        let mut s = SeriesData {
            prom_name: "m".into(),
            labels: vec![],
            kind: Kind::Gauge,
            field: Field::Value,
            buckets: vec![(120, agg(3.0)), (0, agg(1.0)), (120, agg(5.0)), (60, agg(2.0)), (0, agg(7.0))],
        };
        s.settle();
        let got: Vec<(i64, u64, f64)> = s.buckets.iter().map(|(t, a)| (*t, a.count, a.sum.value())).collect();
        assert_eq!(got, [(0, 2, 8.0), (60, 1, 2.0), (120, 2, 8.0)]);
    }

    #[test]
    fn exposed_label_names() {
        assert_eq!(
            labels_from_json(r#"{"service.name":"api","http.route":"/x"}"#),
            [("http_route".to_string(), "/x".to_string()), ("service_name".to_string(), "api".to_string())]
        );
    }
}
