//! Prometheus' response envelope and value formatting.

use crate::query::eval::{Labels, Value};
use serde_json::{json, Map};
use std::collections::BTreeMap;

/// `{"status":"success","data":…}`
pub fn success(data: serde_json::Value) -> serde_json::Value {
    json!({ "status": "success", "data": data })
}

/// [`success`] with Prometheus' `warnings`, when there are any.
pub fn success_with(data: serde_json::Value, warnings: &[String]) -> serde_json::Value {
    let mut body = success(data);
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    body
}

/// The warning of an answer cut short, as Prometheus words it.
pub const TRUNCATED: &str = "results truncated due to limit";

/// The `data` of an instant query.
pub fn instant(value: &Value, t: f64) -> serde_json::Value {
    match value {
        Value::Scalar(v) => json!({ "resultType": "scalar", "result": [time(t), format_value(*v)] }),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| json!({
                "metric": metric(&s.labels),
                "value": [time(t), format_value(s.value)],
            })).collect::<Vec<_>>(),
        }),
    }
}

fn metric(labels: &Labels) -> serde_json::Value {
    serde_json::Value::Object(labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>())
}

/// The `data` of a range query: one series per label set, sorted by labels,
/// each with its values sorted by time. A scalar is one series without
/// labels, as Prometheus returns it.
pub fn matrix(steps: &[(f64, Value)]) -> serde_json::Value {
    let mut series: BTreeMap<Labels, Vec<serde_json::Value>> = BTreeMap::new();
    for (t, value) in steps {
        match value {
            Value::Scalar(v) => series.entry(Vec::new()).or_default().push(json!([time(*t), format_value(*v)])),
            Value::Vector(samples) => {
                for s in samples {
                    series.entry(s.labels.clone()).or_default().push(json!([time(*t), format_value(s.value)]));
                }
            }
        }
    }
    json!({
        "resultType": "matrix",
        "result": series.iter().map(|(labels, values)| json!({ "metric": metric(labels), "values": values })).collect::<Vec<_>>(),
    })
}

/// A sample time as Prometheus writes it: unix seconds, a whole number
/// when whole, else with millisecond precision.
pub fn time(t: f64) -> serde_json::Value {
    if t.fract() == 0.0 && t.abs() < 9e15 {
        json!(t as i64)
    } else {
        json!((t * 1000.0).round() / 1000.0)
    }
}

/// Sample values are strings in Prometheus' API, spelled as Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` with `+Inf`, `-Inf` and `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::eval::Sample;

    #[test]
    fn envelopes() {
        assert_eq!(success(instant(&Value::Scalar(2.0), 4.0)), json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}));
        let v = Value::Vector(vec![Sample { labels: vec![("__name__".into(), "m".into())], value: 0.25 }]);
        assert_eq!(instant(&v, 10.5), json!({"resultType":"vector","result":[{"metric":{"__name__":"m"},"value":[10.5,"0.25"]}]}));
    }

    #[test]
    fn a_matrix_groups_steps_by_series() {
        let a = |v: f64| Sample { labels: vec![("x".into(), "a".into())], value: v };
        let steps = vec![(60.0, Value::Vector(vec![a(1.0)])), (120.0, Value::Vector(vec![a(2.5)])), (180.0, Value::Vector(vec![]))];
        assert_eq!(matrix(&steps), json!({"resultType":"matrix","result":[{"metric":{"x":"a"},"values":[[60,"1"],[120,"2.5"]]}]}));
        assert_eq!(matrix(&[(4.0, Value::Scalar(2.0))]), json!({"resultType":"matrix","result":[{"metric":{},"values":[[4,"2"]]}]}));
    }

    #[test]
    fn times_are_whole_seconds_or_milliseconds() {
        assert_eq!(time(1_700_000_000.0), json!(1_700_000_000));
        assert_eq!(time(1.2345), json!(1.235));
    }

    #[test]
    fn values_are_spelled_like_go() {
        assert_eq!(format_value(99.0), "99");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
