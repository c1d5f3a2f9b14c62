//! Evaluation of a parsed query at one time over fetched series: one arm per
//! expression kind.
//!
//! A distribution's samples stay a histogram (`Num::Dist`) until a number is
//! needed, so that aggregating distributions merges their histograms first
//! and the quantile of a group is exact, not a combination of quantiles.

use super::select::{Field, Selection, QUANTILE};
use super::series::SeriesData;
use crate::error::ApiError;
use promql_parser::parser::{AggregateExpr, Call, Expr, LabelModifier};
use proto::aggregate::Aggregate;
use proto::point::Kind;
use proto::sum::kahan_inc;
use std::collections::HashMap;

pub type Labels = Vec<(String, String)>;

/// A number, or a histogram waiting for its quantile.
#[derive(Clone, Debug)]
pub enum Num {
    Float(f64),
    /// Merged samples and the quantile to read from them, if one was asked
    /// for (`name{quantile="φ"}`); without one only `histogram_quantile`
    /// and aggregations can use it.
    Dist {
        agg: Box<Aggregate>,
        phi: Option<f64>,
    },
}

/// One element of an instant vector during evaluation.
#[derive(Clone, Debug)]
pub struct Elem {
    /// Sorted by name, `__name__` included where the series keeps its name.
    pub labels: Labels,
    pub num: Num,
}

/// One element of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// A query's value at one time.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    /// Sorted by labels.
    Vector(Vec<Sample>),
}

enum Inner {
    Scalar(f64),
    Vector(Vec<Elem>),
}

/// The selections of the query with their fetched series, in the order
/// [`super::select::selections`] listed them.
pub type Fetched = [(Selection, Vec<SeriesData>)];

/// What every evaluation time of one query shares.
pub struct Env<'a> {
    pub fetched: &'a Fetched,
    /// The window of a selector without a range (see [`super::Times`]).
    pub default_window: f64,
    /// The resolution of the fetched buckets.
    pub resolution: i64,
}

/// Evaluates `expr` at unix time `t`.
pub fn eval(expr: &Expr, t: f64, env: &Env<'_>) -> Result<Value, ApiError> {
    let mut next = 0;
    Ok(match eval_at(expr, t, env, &mut next, false)? {
        Inner::Scalar(v) => Value::Scalar(v),
        Inner::Vector(elems) => {
            let mut samples = numbers(elems);
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Vector(samples)
        }
    })
}

/// `samples`: inside histogram_quantile(), where a gauge stands for the
/// histogram of its samples rather than its latest value.
fn eval_at(expr: &Expr, t: f64, env: &Env<'_>, next: &mut usize, samples: bool) -> Result<Inner, ApiError> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Inner::Scalar(n.val)),
        Expr::Paren(p) => eval_at(&p.expr, t, env, next, samples),
        Expr::Unary(u) => match eval_at(&u.expr, t, env, next, samples)? {
            Inner::Scalar(v) => Ok(Inner::Scalar(-v)),
            Inner::Vector(elems) => each(elems, |x| Ok(-x)),
        },
        Expr::Binary(b) => {
            let lhs = eval_at(&b.lhs, t, env, next, samples)?;
            let rhs = eval_at(&b.rhs, t, env, next, samples)?;
            binary(&b.op.to_string(), lhs, rhs)
        }
        Expr::VectorSelector(_) => {
            let (sel, series) = take(env, next)?;
            Ok(Inner::Vector(instant(sel, series, t, super::window(None, env.default_window, env.resolution), samples)))
        }
        // Outside rate() and increase(), a range sets the window a
        // distribution's quantile is read over.
        Expr::MatrixSelector(ms) => {
            let (sel, series) = take(env, next)?;
            let w = super::window(Some(ms.range.as_secs_f64()), env.default_window, env.resolution);
            Ok(Inner::Vector(instant(sel, series, t, w, samples)))
        }
        Expr::Aggregate(a) => aggregate(a, eval_at(&a.expr, t, env, next, samples)?),
        Expr::Call(c) => call(c, t, env, next),
        other => Err(super::select::unsupported(other)),
    }
}

fn take<'a>(env: &'a Env<'_>, next: &mut usize) -> Result<(&'a Selection, &'a [SeriesData]), ApiError> {
    let (sel, series) = env.fetched.get(*next).ok_or_else(|| ApiError::Execution("internal: selection not fetched".into()))?;
    *next += 1;
    Ok((sel, series))
}

/// An instant vector selector at `t` over window `w`: a gauge's latest
/// value, a summary's own quantile series, or the samples of a distribution
/// (or gauge) for a quantile. Counters (and `_count`, `_sum`) are read
/// through rate() and increase().
fn instant(sel: &Selection, series: &[SeriesData], t: f64, w: f64, samples: bool) -> Vec<Elem> {
    let mut out = Vec::new();
    for s in series.iter().filter(|s| s.field == Field::Value && sel.matches(&s.labels)) {
        let Some(agg) = s.window(t, w) else { continue };
        let mut labels = named(s);
        let num = if let Some((_, own)) = s.labels.iter().find(|(k, _)| k == QUANTILE) {
            // An OTLP Summary's quantile series is an ordinary gauge: the
            // matcher selects on its label.
            if sel.quantile.as_ref().is_some_and(|(phi, _)| own.parse::<f64>().ok() != Some(*phi)) {
                continue;
            }
            Num::Float(agg.last)
        } else {
            match (&sel.quantile, s.kind) {
                (Some((phi, text)), Kind::Gauge | Kind::Distribution) => {
                    labels.push((QUANTILE.to_string(), text.clone()));
                    Num::Dist { agg: Box::new(agg), phi: Some(*phi) }
                }
                (None, Kind::Gauge) if !samples => Num::Float(agg.last),
                (None, Kind::Gauge | Kind::Distribution) => Num::Dist { agg: Box::new(agg), phi: None },
                _ => continue,
            }
        };
        labels.sort();
        out.push(Elem { labels, num });
    }
    out
}

/// The series' labels with its exposed name.
fn named(s: &SeriesData) -> Labels {
    let mut labels = Vec::with_capacity(s.labels.len() + 2);
    labels.push(("__name__".to_string(), s.prom_name.clone()));
    labels.extend(s.labels.iter().cloned());
    labels
}

fn call(c: &Call, t: f64, env: &Env<'_>, next: &mut usize) -> Result<Inner, ApiError> {
    let args = &c.args.args;
    match c.func.name {
        "rate" | "increase" => {
            let Some(Expr::MatrixSelector(ms)) = args.first().map(|a| a.as_ref()) else {
                return Err(ApiError::BadData(format!("{}() needs a range selector such as name[5m], in {c}", c.func.name)));
            };
            let (sel, series) = take(env, next)?;
            let asked = ms.range.as_secs_f64();
            let w = super::window(Some(asked), env.default_window, env.resolution);
            // A window shorter than the stored buckets reads one bucket: its
            // rate is the bucket's, and its increase that rate over the
            // window asked for, not the whole bucket's increase.
            let value = |v: f64| match c.func.name {
                "rate" => v / w,
                _ if w > asked => v / w * asked,
                _ => v,
            };
            Ok(floats(increases(sel, series, t, w).into_iter().map(|(labels, v)| (labels, value(v)))))
        }
        "histogram_quantile" => {
            let (Some(phi), Some(v)) = (args.first(), args.get(1)) else {
                return Err(ApiError::BadData(format!("histogram_quantile() takes a quantile and a vector, in {c}")));
            };
            let Inner::Scalar(phi) = eval_at(phi, t, env, next, false)? else {
                return Err(ApiError::BadData(format!("the quantile of histogram_quantile() must be a scalar, in {c}")));
            };
            let Inner::Vector(elems) = eval_at(v, t, env, next, true)? else {
                return Err(ApiError::BadData(format!("histogram_quantile() needs a vector, in {c}")));
            };
            let mut out = Vec::new();
            for e in elems {
                let Num::Dist { agg, .. } = e.num else { continue };
                let value = if phi < 0.0 {
                    f64::NEG_INFINITY
                } else if phi > 1.0 {
                    f64::INFINITY
                } else {
                    // No samples (or φ = NaN): no value falls below any
                    // rank, so NaN, as Prometheus answers for an empty
                    // histogram, rather than no series.
                    agg.quantile(phi).unwrap_or(f64::NAN)
                };
                let labels = without_name(e.labels).into_iter().filter(|(k, _)| k != QUANTILE).collect();
                out.push(Elem { labels, num: Num::Float(value) });
            }
            Ok(Inner::Vector(out))
        }
        other => Err(ApiError::BadData(format!("unsupported function {other}()"))),
    }
}

/// The exact increase of each counter-like series over the window: the sum
/// of the stored deltas, with no extrapolation to the window's edges.
fn increases(sel: &Selection, series: &[SeriesData], t: f64, w: f64) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    for s in series.iter().filter(|s| sel.matches(&s.labels)) {
        let Some(agg) = s.window(t, w) else { continue };
        let value = match (s.field, s.kind) {
            (Field::Value, Kind::Counter) | (Field::Sum, _) => agg.sum.value(),
            (Field::Count, _) => agg.count as f64,
            _ => continue,
        };
        let mut labels = s.labels.clone();
        labels.sort();
        out.push((labels, value));
    }
    out
}

fn aggregate(a: &AggregateExpr, arg: Inner) -> Result<Inner, ApiError> {
    let Inner::Vector(elems) = arg else {
        return Err(ApiError::BadData(format!("{}() needs a vector, not a scalar", a.op)));
    };
    let op = a.op.to_string();
    let key = |labels: &Labels| -> Labels {
        match &a.modifier {
            None => Vec::new(),
            Some(LabelModifier::Include(by)) => labels.iter().filter(|(k, _)| by.labels.contains(k)).cloned().collect(),
            Some(LabelModifier::Exclude(without)) => {
                labels.iter().filter(|(k, _)| k != "__name__" && !without.labels.contains(k)).cloned().collect()
            }
        }
    };
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<Elem>> = HashMap::new();
    for e in elems {
        let k = key(&e.labels);
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(e);
    }
    let mut out = Vec::new();
    for k in order {
        let members = groups.remove(&k).unwrap_or_default();
        let all_dist = members.iter().all(|e| matches!(e.num, Num::Dist { .. }));
        if op == "count" {
            out.push(Elem { labels: k, num: Num::Float(members.len() as f64) });
        } else if all_dist {
            // Distributions merge: the group's quantile is that of all its samples.
            let mut merged: Option<(Aggregate, Option<f64>)> = None;
            for e in members {
                let Num::Dist { agg, phi } = e.num else { continue };
                match &mut merged {
                    None => merged = Some((*agg, phi)),
                    Some((m, _)) => m.merge(&agg),
                }
            }
            if let Some((agg, phi)) = merged {
                out.push(Elem { labels: k, num: Num::Dist { agg: Box::new(agg), phi } });
            }
        } else {
            let mut members = numbers(members);
            // Prometheus aggregates series in label order; float sums
            // depend on the order, so do the same.
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            let values: Vec<f64> = members.into_iter().map(|s| s.value).collect();
            let value = match op.as_str() {
                "sum" => sum(&values),
                "avg" => avg(&values),
                "min" => extreme(&values, |v, best| v < best),
                _ => extreme(&values, |v, best| v > best),
            };
            if let Some(value) = value {
                out.push(Elem { labels: k, num: Num::Float(value) });
            }
        }
    }
    Ok(Inner::Vector(out))
}

/// `sum`: compensated, as Prometheus sums ([`kahan_inc`]); `None` for no
/// values.
fn sum(values: &[f64]) -> Option<f64> {
    let (first, rest) = values.split_first()?;
    let (s, c) = rest.iter().fold((*first, 0.0), |(s, c), &v| kahan_inc(v, s, c));
    Some(s + c)
}

/// `avg`, as Prometheus computes it: the compensated sum divided by the
/// count while the sum stays finite; from the first term that would make
/// it overflow, a compensated incremental mean, so that the mean of values
/// near `f64::MAX` is still their mean.
fn avg(values: &[f64]) -> Option<f64> {
    let (first, rest) = values.split_first()?;
    let (mut sum, mut c, mut n) = (*first, 0.0, 1.0);
    let mut mean: Option<f64> = None;
    for &v in rest {
        n += 1.0;
        let m = match mean {
            Some(m) => m,
            None => {
                let (s, nc) = kahan_inc(v, sum, c);
                if !s.is_infinite() {
                    (sum, c) = (s, nc);
                    continue;
                }
                c /= n - 1.0;
                sum / (n - 1.0)
            }
        };
        let q = (n - 1.0) / n;
        let (m, nc) = kahan_inc(v / n, q * m, q * c);
        (mean, c) = (Some(m), nc);
    }
    Some(match mean {
        Some(m) => m + c,
        None => sum / n + c / n,
    })
}

/// `min` or `max`: the first value, replaced by any later one that is
/// `better` or whenever the current one is NaN, so NaN is the answer only
/// when every value is NaN (as in Prometheus).
fn extreme(values: &[f64], better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let (first, rest) = values.split_first()?;
    Some(rest.iter().fold(*first, |best, &v| if better(v, best) || best.is_nan() { v } else { best }))
}

fn binary(op: &str, lhs: Inner, rhs: Inner) -> Result<Inner, ApiError> {
    Ok(match (lhs, rhs) {
        (Inner::Scalar(a), Inner::Scalar(b)) => Inner::Scalar(arithmetic(op, a, b)?),
        (Inner::Vector(v), Inner::Scalar(b)) => each(v, |x| arithmetic(op, x, b))?,
        (Inner::Scalar(a), Inner::Vector(v)) => each(v, |x| arithmetic(op, a, x))?,
        (Inner::Vector(l), Inner::Vector(r)) => {
            // One-to-one matching on all labels but the name.
            let mut right: HashMap<Labels, f64> = HashMap::new();
            for s in numbers(r) {
                if right.insert(without_name(s.labels), s.value).is_some() {
                    return Err(ApiError::Execution("found duplicate series for the match group on the right-hand side".into()));
                }
            }
            let mut out = Vec::new();
            for s in numbers(l) {
                let labels = without_name(s.labels);
                if let Some(b) = right.get(&labels) {
                    out.push((labels, arithmetic(op, s.value, *b)?));
                }
            }
            floats(out.into_iter())
        }
    })
}

/// `f` applied to each element's number; the result drops the name.
fn each(v: Vec<Elem>, f: impl Fn(f64) -> Result<f64, ApiError>) -> Result<Inner, ApiError> {
    let out = numbers(v).into_iter().map(|s| Ok((without_name(s.labels), f(s.value)?))).collect::<Result<Vec<_>, ApiError>>()?;
    Ok(floats(out.into_iter()))
}

fn arithmetic(op: &str, a: f64, b: f64) -> Result<f64, ApiError> {
    Ok(match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" => a / b,
        "%" => a % b,
        "^" => a.powf(b),
        _ => return Err(ApiError::BadData(format!("unsupported operator {op}"))),
    })
}

/// Elements as numbers: a histogram with a quantile becomes that quantile;
/// one without (a distribution selected without `quantile`) has no single
/// value, like a Prometheus summary, and is left out.
fn numbers(elems: Vec<Elem>) -> Vec<Sample> {
    elems
        .into_iter()
        .filter_map(|e| {
            let value = match e.num {
                Num::Float(v) => v,
                Num::Dist { agg, phi } => agg.quantile(phi?)?,
            };
            Some(Sample { labels: e.labels, value })
        })
        .collect()
}

fn floats(items: impl Iterator<Item = (Labels, f64)>) -> Inner {
    Inner::Vector(items.map(|(labels, v)| Elem { labels, num: Num::Float(v) }).collect())
}

fn without_name(labels: Labels) -> Labels {
    labels.into_iter().filter(|(k, _)| k != "__name__").collect()
}

#[cfg(test)]
mod tests;
