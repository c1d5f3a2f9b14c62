//! Evaluation of a lowered query ([`super::plan`]) at one time over fetched
//! series: one arm per node.
//!
//! A distribution's samples stay a histogram (`Num::Dist`) until a number is
//! needed, so that aggregating distributions merges their histograms first
//! and the quantile of a group is exact, not a combination of quantiles.

use super::plan::{Aggregation, Arith, Grouping, Node};
use super::select::{Field, Selection, QUANTILE};
use super::series::SeriesData;
use crate::error::ApiError;
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

/// The selections of the query with their fetched series, indexed by the
/// plan's selection ids.
pub type Fetched = [(Selection, Vec<SeriesData>)];

/// What every evaluation time of one query shares.
pub struct Env<'a> {
    pub fetched: &'a Fetched,
    /// The window of a selector without a range (see [`super::Times`]).
    pub default_window: f64,
    /// The resolution of the fetched buckets.
    pub resolution: i64,
}

/// Evaluates the plan's `root` at unix time `t`.
pub fn eval(root: &Node, t: f64, env: &Env<'_>) -> Result<Value, ApiError> {
    Ok(match eval_at(root, t, env, false)? {
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
fn eval_at(node: &Node, t: f64, env: &Env<'_>, samples: bool) -> Result<Inner, ApiError> {
    match node {
        Node::Number(v) => Ok(Inner::Scalar(*v)),
        Node::Negate(arg) => match eval_at(arg, t, env, samples)? {
            Inner::Scalar(v) => Ok(Inner::Scalar(-v)),
            Inner::Vector(elems) => Ok(each(elems, |x| -x)),
        },
        Node::Binary { op, lhs, rhs } => {
            let lhs = eval_at(lhs, t, env, samples)?;
            let rhs = eval_at(rhs, t, env, samples)?;
            binary(*op, lhs, rhs)
        }
        // Outside rate() and increase(), a range sets the window a
        // distribution's quantile is read over.
        Node::Select { id, range_s } => {
            let (sel, series) = fetched(env, *id)?;
            Ok(Inner::Vector(instant(sel, series, t, super::window(*range_s, env.default_window, env.resolution), samples)))
        }
        Node::Aggregate { op, grouping, arg } => aggregate(*op, grouping, eval_at(arg, t, env, samples)?),
        Node::Increase { id, range_s, per_second } => {
            let (sel, series) = fetched(env, *id)?;
            let w = super::window(Some(*range_s), env.default_window, env.resolution);
            // A window shorter than the stored buckets reads one bucket: its
            // rate is the bucket's, and its increase that rate over the
            // window asked for, not the whole bucket's increase.
            let value = |v: f64| match per_second {
                true => v / w,
                false if w > *range_s => v / w * range_s,
                false => v,
            };
            Ok(floats(increases(sel, series, t, w).into_iter().map(|(labels, v)| (labels, value(v)))))
        }
        Node::HistogramQuantile { phi, arg } => {
            let Inner::Scalar(phi) = eval_at(phi, t, env, false)? else {
                return Err(ApiError::BadData("the quantile of histogram_quantile() must be a scalar".into()));
            };
            let Inner::Vector(elems) = eval_at(arg, t, env, true)? else {
                return Err(ApiError::BadData("histogram_quantile() needs a vector".into()));
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
    }
}

fn fetched<'a>(env: &'a Env<'_>, id: usize) -> Result<(&'a Selection, &'a [SeriesData]), ApiError> {
    let (sel, series) = env.fetched.get(id).ok_or_else(|| ApiError::Execution("internal: selection not fetched".into()))?;
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

fn aggregate(op: Aggregation, grouping: &Grouping, arg: Inner) -> Result<Inner, ApiError> {
    let Inner::Vector(elems) = arg else {
        return Err(ApiError::BadData(format!("{}() needs a vector, not a scalar", op.name())));
    };
    let key = |labels: &Labels| -> Labels {
        match grouping {
            Grouping::All => Vec::new(),
            Grouping::By(by) => labels.iter().filter(|(k, _)| by.contains(k)).cloned().collect(),
            Grouping::Without(without) => labels.iter().filter(|(k, _)| k != "__name__" && !without.contains(k)).cloned().collect(),
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
        if op == Aggregation::Count {
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
            let value = match op {
                Aggregation::Sum => sum(&values),
                Aggregation::Avg => avg(&values),
                Aggregation::Min => extreme(&values, |v, best| v < best),
                Aggregation::Max => extreme(&values, |v, best| v > best),
                Aggregation::Count => Some(values.len() as f64),
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

fn binary(op: Arith, lhs: Inner, rhs: Inner) -> Result<Inner, ApiError> {
    Ok(match (lhs, rhs) {
        (Inner::Scalar(a), Inner::Scalar(b)) => Inner::Scalar(op.apply(a, b)),
        (Inner::Vector(v), Inner::Scalar(b)) => each(v, |x| op.apply(x, b)),
        (Inner::Scalar(a), Inner::Vector(v)) => each(v, |x| op.apply(a, x)),
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
                    out.push((labels, op.apply(s.value, *b)));
                }
            }
            floats(out.into_iter())
        }
    })
}

/// `f` applied to each element's number; the result drops the name.
fn each(v: Vec<Elem>, f: impl Fn(f64) -> f64) -> Inner {
    floats(numbers(v).into_iter().map(|s| (without_name(s.labels), f(s.value))))
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
