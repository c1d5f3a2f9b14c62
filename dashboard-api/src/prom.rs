//! Prometheus' response envelope and value formatting.

use crate::query::eval::Value;
use serde_json::{json, Map};

/// `{"status":"success","data":…}`
pub fn success(data: serde_json::Value) -> serde_json::Value {
    json!({ "status": "success", "data": data })
}

/// The `data` of an instant query.
pub fn instant(value: &Value, t: f64) -> serde_json::Value {
    match value {
        Value::Scalar(v) => json!({ "resultType": "scalar", "result": [t, format_value(*v)] }),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| json!({
                "metric": s.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
                "value": [t, format_value(s.value)],
            })).collect::<Vec<_>>(),
        }),
    }
}

/// Sample values are strings in Prometheus' API, spelled as Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` with `+Inf`, `-Inf` and `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
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
        assert_eq!(success(instant(&Value::Scalar(2.0), 4.0)), json!({"status":"success","data":{"resultType":"scalar","result":[4.0,"2"]}}));
        let v = Value::Vector(vec![Sample { labels: vec![("__name__".into(), "m".into())], value: 0.25 }]);
        assert_eq!(instant(&v, 10.5), json!({"resultType":"vector","result":[{"metric":{"__name__":"m"},"value":[10.5,"0.25"]}]}));
    }

    #[test]
    fn values_are_spelled_like_go() {
        assert_eq!(format_value(99.0), "99");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
