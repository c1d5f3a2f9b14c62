//! Evaluation of a parsed query at one time over fetched series: one arm per
//! expression kind.

use super::select::{self, Selection, QUANTILE};
use super::series::SeriesData;
use crate::error::ApiError;
use promql_parser::parser::Expr;
use proto::point::Kind;

/// A query's value at one time.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Sorted by name, `__name__` included where the series keeps its name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The selections of the query with their fetched series, in the order
/// [`select::selections`] listed them.
pub type Fetched = [(Selection, Vec<SeriesData>)];

/// Evaluates `expr` at unix time `t`.
pub fn eval(expr: &Expr, t: f64, fetched: &Fetched) -> Result<Value, ApiError> {
    let mut next = 0;
    eval_at(expr, t, fetched, &mut next)
}

fn eval_at(expr: &Expr, t: f64, fetched: &Fetched, next: &mut usize) -> Result<Value, ApiError> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
        Expr::Paren(p) => eval_at(&p.expr, t, fetched, next),
        Expr::Unary(u) => match eval_at(&u.expr, t, fetched, next)? {
            Value::Scalar(v) => Ok(Value::Scalar(-v)),
            Value::Vector(samples) => Ok(Value::Vector(
                samples.into_iter().map(|s| Sample { labels: without_name(s.labels), value: -s.value }).collect(),
            )),
        },
        Expr::Binary(b) => {
            let lhs = eval_at(&b.lhs, t, fetched, next)?;
            let rhs = eval_at(&b.rhs, t, fetched, next)?;
            let op = b.op.to_string();
            match (lhs, rhs) {
                (Value::Scalar(a), Value::Scalar(c)) if b.modifier.is_none() => Ok(Value::Scalar(arithmetic(&op, a, c)?)),
                _ => Err(ApiError::BadData(format!("unsupported binary operation on vectors in {expr}"))),
            }
        }
        Expr::VectorSelector(_) => {
            let (selection, series) = fetched
                .get(*next)
                .ok_or_else(|| ApiError::Execution("internal: selection not fetched".into()))?;
            *next += 1;
            Ok(Value::Vector(instant(selection, series, t)))
        }
        other => Err(select::unsupported(other)),
    }
}

fn arithmetic(op: &str, a: f64, b: f64) -> Result<f64, ApiError> {
    Ok(match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" => a / b,
        "%" => a % b,
        "^" => a.powf(b),
        _ => return Err(ApiError::BadData(format!("unsupported operator {op} between scalars"))),
    })
}

/// An instant vector selector at `t`: a gauge's latest value, or the
/// quantile of a distribution's (or gauge's) samples in the window.
fn instant(selection: &Selection, series: &[SeriesData], t: f64) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in series.iter().filter(|s| selection.matches(&s.labels)) {
        let Some(window) = s.window(t, selection.lookback_s) else { continue };
        // A series with a quantile label of its own (an OTLP Summary's
        // quantiles) is an ordinary gauge: the matcher selects on the label.
        if let Some((_, own)) = s.labels.iter().find(|(k, _)| k == QUANTILE) {
            let wanted = selection.quantile.as_ref().is_none_or(|(phi, _)| own.parse::<f64>().ok() == Some(*phi));
            if wanted {
                let mut labels = s.labels.clone();
                labels.push(("__name__".to_string(), s.prom_name.clone()));
                labels.sort();
                out.push(Sample { labels, value: window.last });
            }
            continue;
        }
        let value = match (&selection.quantile, s.kind) {
            (Some((phi, _)), Kind::Gauge | Kind::Distribution) => window.quantile(*phi),
            (None, Kind::Gauge) => Some(window.last),
            // A distribution behaves like a Prometheus summary: without a
            // quantile there is no single value. Counters are read through
            // rate() and increase().
            _ => None,
        };
        let Some(value) = value else { continue };
        let mut labels = Vec::with_capacity(s.labels.len() + 2);
        labels.push(("__name__".to_string(), s.prom_name.clone()));
        labels.extend(s.labels.iter().cloned());
        if let Some((_, text)) = &selection.quantile {
            labels.push((QUANTILE.to_string(), text.clone()));
        }
        labels.sort();
        out.push(Sample { labels, value });
    }
    out
}

fn without_name(labels: Vec<(String, String)>) -> Vec<(String, String)> {
    labels.into_iter().filter(|(k, _)| k != "__name__").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{parse, select::selections};
    use proto::aggregate::Aggregate;
    use proto::point::{Point, Value as PV};

    fn series(name: &str, kind: Kind, labels: &[(&str, &str)], minute_values: &[(i64, f64)]) -> SeriesData {
        let mut buckets: Vec<(i64, Aggregate)> = Vec::new();
        for &(start, v) in minute_values {
            let mut a = Aggregate::empty(true, "");
            a.add_point(&Point { time_unix_nano: start as u64 * 1_000_000_000, value: Some(PV::Gauge(v)), ..Default::default() });
            match buckets.iter_mut().find(|(s, _)| *s == start) {
                Some((_, b)) => b.merge(&a),
                None => buckets.push((start, a)),
            }
        }
        SeriesData {
            prom_name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            kind,
            buckets,
        }
    }

    fn run(q: &str, t: f64, data: Vec<SeriesData>) -> Result<Value, ApiError> {
        let expr = parse(q)?;
        let fetched: Vec<(Selection, Vec<SeriesData>)> =
            selections(&expr)?.into_iter().map(|s| (s, data.clone())).collect();
        eval(&expr, t, &fetched)
    }

    #[test]
    fn scalar_arithmetic_for_grafanas_connection_test() {
        assert_eq!(run("1+1", 4.0, vec![]).unwrap(), Value::Scalar(2.0));
        assert_eq!(run("-(2 * 3) ^ 2", 4.0, vec![]).unwrap(), Value::Scalar(-36.0));
    }

    #[test]
    fn quantile_of_a_distribution_over_the_default_window() {
        let points: Vec<(i64, f64)> = (1..=100).map(|v| (600, f64::from(v))).collect();
        let data = vec![series("lat", Kind::Distribution, &[("service_name", "api")], &points)];
        let v = run(r#"lat{quantile="0.99"}"#, 900.0, data.clone()).unwrap();
        let Value::Vector(samples) = v else { panic!("expected a vector") };
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].value, 99.0);
        assert_eq!(
            samples[0].labels,
            [("__name__".into(), "lat".into()), ("quantile".into(), "0.99".into()), ("service_name".into(), "api".into())]
        );
        // Five minutes and more after the bucket ends, the window is empty.
        assert_eq!(run(r#"lat{quantile="0.99"}"#, 960.0, data.clone()).unwrap(), Value::Vector(vec![]));
        // Label matchers filter series.
        assert_eq!(run(r#"lat{quantile="0.5",service_name="web"}"#, 900.0, data).unwrap(), Value::Vector(vec![]));
    }

    #[test]
    fn gauge_without_quantile_is_its_latest_value() {
        let data = vec![series("temp", Kind::Gauge, &[], &[(0, 5.0), (60, 7.0)])];
        let Value::Vector(s) = run("temp", 120.0, data).unwrap() else { panic!() };
        assert_eq!(s[0].value, 7.0);
    }

    #[test]
    fn a_summarys_own_quantile_label_selects_instead_of_computing() {
        let data = vec![
            series("rpc", Kind::Gauge, &[("quantile", "0.5")], &[(0, 4.0)]),
            series("rpc", Kind::Gauge, &[("quantile", "0.99")], &[(0, 9.5)]),
        ];
        let Value::Vector(s) = run(r#"rpc{quantile="0.99"}"#, 60.0, data.clone()).unwrap() else { panic!() };
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 9.5);
        assert!(s[0].labels.contains(&("quantile".to_string(), "0.99".to_string())));
        let Value::Vector(s) = run("rpc", 60.0, data).unwrap() else { panic!() };
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn vector_arithmetic_is_not_supported_yet() {
        let err = run("temp * 2", 120.0, vec![]).unwrap_err();
        assert!(err.to_string().contains("binary operation on vectors"));
    }
}
