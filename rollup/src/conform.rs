//! A point whose kind or unit is not its series'.
//!
//! A series' kind and unit are those of the first point the catalog
//! recorded for it. A later point of the same series (same tenant, metric
//! and labels) with another kind or unit is
//! - **converted** when that is exact: a value in another time unit (`s`
//!   for a series in `ms`) is scaled to the series' unit; a gauge's sample
//!   and a distribution's samples go into each other's histogram (both
//!   kinds store samples);
//! - **set aside** otherwise (a counter's increase is not a sample, nor a
//!   sample an increase; `By` is not `1`): it is not aggregated, and the
//!   run reports it in `/status` under `set_aside`, with the reason.
//!
//! Points with a non-finite number are set aside too: ingest never writes
//! them, but an archive is input like any other, and a stored NaN or
//! infinity is a `null` that the aggregate columns refuse.

use proto::aggregate::time_unit_ns;
use proto::point::{Distribution, Kind, Point, Value};
use proto::sum::saturate;
use std::borrow::Cow;

/// `p` in its series' `kind` and `unit`, or why it cannot be.
pub fn conform<'p>(p: &'p Point, kind: Kind, unit: &str) -> Result<Cow<'p, Point>, String> {
    if !finite(p) {
        return Err(format!("metric {}: a non-finite value", p.metric));
    }
    let compatible = match (p.kind(), kind) {
        (a, b) if a == b => true,
        (Kind::Gauge | Kind::Distribution, Kind::Gauge | Kind::Distribution) => true,
        _ => false,
    };
    if !compatible {
        return Err(format!("metric {}: a {} point for a {} series", p.metric, p.kind().as_str(), kind.as_str()));
    }
    if p.unit == unit {
        return Ok(Cow::Borrowed(p));
    }
    match (time_unit_ns(&p.unit), time_unit_ns(unit)) {
        (Some(from), Some(to)) => Ok(Cow::Owned(scaled(p, from / to, unit))),
        _ => Err(format!("metric {}: a point in {:?} for a series in {:?}", p.metric, p.unit, unit)),
    }
}

fn finite(p: &Point) -> bool {
    match &p.value {
        None => true,
        Some(Value::Gauge(v)) => v.is_finite(),
        Some(Value::Counter(c)) => c.value.is_finite(),
        Some(Value::Distribution(d)) => {
            d.sum.is_finite()
                && d.min.is_none_or(f64::is_finite)
                && d.max.is_none_or(f64::is_finite)
                && d.values.iter().all(|v| v.is_finite())
        }
    }
}

/// `p` with every value multiplied by `factor`, saturating, in `unit`.
fn scaled(p: &Point, factor: f64, unit: &str) -> Point {
    let x = |v: f64| saturate(v * factor);
    let value = p.value.as_ref().map(|v| match v {
        Value::Gauge(g) => Value::Gauge(x(*g)),
        Value::Counter(c) => Value::Counter(proto::point::Counter { value: x(c.value), ..c.clone() }),
        Value::Distribution(d) => Value::Distribution(Distribution {
            sum: x(d.sum),
            min: d.min.map(x),
            max: d.max.map(x),
            values: d.values.iter().map(|&v| x(v)).collect(),
            // Representatives are no longer powers of the base.
            exponential_scale: None,
            ..d.clone()
        }),
    });
    Point { value, unit: unit.to_owned(), ..p.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::Counter;

    fn point(unit: &str, value: Value) -> Point {
        Point { metric: "m".into(), unit: unit.into(), value: Some(value), ..Default::default() }
    }

    #[test]
    fn time_units_are_converted_to_the_series_unit() {
        let p = point("s", Value::Gauge(1.5));
        assert_eq!(conform(&p, Kind::Gauge, "ms").unwrap().value, Some(Value::Gauge(1500.0)));
        let d = point(
            "ms",
            Value::Distribution(Distribution {
                count: 2,
                sum: 3000.0,
                min: Some(1000.0),
                max: Some(2000.0),
                values: vec![1000.0, 2000.0],
                counts: vec![1, 1],
                ..Default::default()
            }),
        );
        let Some(Value::Distribution(got)) = conform(&d, Kind::Distribution, "s").unwrap().into_owned().value else { panic!() };
        assert_eq!((got.sum, got.min, got.max, got.values), (3.0, Some(1.0), Some(2.0), vec![1.0, 2.0]));
        // The same unit: the point as it is.
        assert!(matches!(conform(&p, Kind::Gauge, "s").unwrap(), Cow::Borrowed(_)));
        // Saturating, never infinite.
        let big = point("d", Value::Gauge(1e300));
        assert_eq!(conform(&big, Kind::Gauge, "ns").unwrap().value, Some(Value::Gauge(f64::MAX)));
    }

    #[test]
    fn samples_go_into_samples_and_the_rest_is_set_aside() {
        let g = point("ms", Value::Gauge(1.0));
        assert!(conform(&g, Kind::Distribution, "ms").is_ok());
        let c = point("ms", Value::Counter(Counter { value: 1.0, ..Default::default() }));
        assert_eq!(conform(&c, Kind::Gauge, "ms").unwrap_err(), "metric m: a counter point for a gauge series");
        assert!(conform(&g, Kind::Counter, "ms").is_err());
        assert_eq!(
            conform(&point("By", Value::Gauge(1.0)), Kind::Gauge, "1").unwrap_err(),
            r#"metric m: a point in "By" for a series in "1""#
        );
        assert!(conform(&point("", Value::Gauge(f64::NAN)), Kind::Gauge, "").unwrap_err().contains("non-finite"));
        let inf = point("", Value::Distribution(Distribution { sum: f64::INFINITY, ..Default::default() }));
        assert!(conform(&inf, Kind::Distribution, "").is_err());
    }
}
