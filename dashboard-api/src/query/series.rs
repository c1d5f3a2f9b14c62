//! Series as fetched from D1, in the exposed (Prometheus) spelling.

use proto::aggregate::Aggregate;
use proto::point::Kind;

/// Width of the buckets queries read.
pub const RESOLUTION_S: i64 = 60;

/// One series and its aggregates around the evaluation time.
#[derive(Clone, Debug)]
pub struct SeriesData {
    pub prom_name: String,
    /// Exposed label names and values, sorted by name.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    /// (bucket start in unix seconds, aggregate), at [`RESOLUTION_S`].
    pub buckets: Vec<(i64, Aggregate)>,
}

impl SeriesData {
    /// The merge of the buckets that overlap the window (t − w, t]. Buckets
    /// are whole minutes, so the window is widened to the minutes it touches.
    pub fn window(&self, t: f64, w: f64) -> Option<Aggregate> {
        let mut merged: Option<Aggregate> = None;
        for (start, agg) in &self.buckets {
            let (start, end) = (*start as f64, (*start + RESOLUTION_S) as f64);
            if end > t - w && start <= t {
                match &mut merged {
                    None => merged = Some(agg.clone()),
                    Some(m) => m.merge(agg),
                }
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
    fn window_merges_overlapping_minutes() {
        let s = SeriesData {
            prom_name: "m".into(),
            labels: vec![],
            kind: Kind::Gauge,
            buckets: vec![(0, agg(1.0)), (60, agg(2.0)), (120, agg(3.0)), (300, agg(4.0))],
        };
        // (90, 150] touches the minutes starting at 60 and 120.
        assert_eq!(s.window(150.0, 60.0).unwrap().count, 2);
        assert_eq!(s.window(400.0, 300.0).unwrap().count, 3);
        assert!(s.window(1000.0, 60.0).is_none());
    }

    #[test]
    fn exposed_label_names() {
        assert_eq!(
            labels_from_json(r#"{"service.name":"api","http.route":"/x"}"#),
            [("http_route".to_string(), "/x".to_string()), ("service_name".to_string(), "api".to_string())]
        );
    }
}
