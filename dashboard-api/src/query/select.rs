//! What data a query needs: one [`Selection`] per vector selector.

use crate::error::ApiError;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

/// The label that picks a quantile of a distribution.
pub const QUANTILE: &str = "quantile";

/// Aggregations evaluated; the others are `bad_data`.
pub const AGGREGATIONS: [&str; 5] = ["sum", "avg", "min", "max", "count"];
/// Functions evaluated; the others are `bad_data`.
pub const FUNCTIONS: [&str; 3] = ["rate", "increase", "histogram_quantile"];

/// A vector or range selector reduced to what the store needs.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Exposed metric name.
    pub name: String,
    /// Matchers on labels other than the name and `quantile`.
    pub matchers: Vec<Matcher>,
    /// The φ of `quantile="φ"`, if given.
    pub quantile: Option<(f64, String)>,
    /// The range of a range selector (`name[1h]`), in seconds.
    pub range_s: Option<f64>,
}

/// Catalog names that can serve an exposed name: its own, and for `x_count`
/// and `x_sum` the series `x` (whose samples' count and sum they are).
pub fn catalog_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    for suffix in ["_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix).filter(|b| !b.is_empty()) {
            names.push(base.to_owned());
        }
    }
    names
}

/// Which number of a stored series a selection reads: the series itself,
/// or the count or sum of a distribution's (or gauge's) samples exposed as
/// `<name>_count` and `<name>_sum`, which behave as counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Value,
    Count,
    Sum,
}

impl Selection {
    /// Catalog names that can serve the selection (see [`catalog_names`]).
    pub fn names(&self) -> Vec<String> {
        catalog_names(&self.name)
    }

    /// What the selection reads of a series found under `prom_name`.
    pub fn field_of(&self, prom_name: &str) -> Field {
        if prom_name == self.name {
            Field::Value
        } else if self.name.ends_with("_count") {
            Field::Count
        } else {
            Field::Sum
        }
    }

    /// Whether a series' exposed labels satisfy every matcher. A missing label
    /// matches as the empty string, as in Prometheus.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels.iter().find(|(k, _)| *k == m.name).map_or("", |(_, v)| v.as_str());
            m.is_match(value)
        })
    }
}

impl Selection {
    /// The series a catalog row is for this selection, if it selects it:
    /// by name, field (only a distribution's or gauge's samples have a
    /// count and sum) and label matchers. Its buckets are read afterwards.
    pub fn series_of(&self, prom_name: &str, labels: &[(String, String)], kind: proto::point::Kind) -> Option<super::series::SeriesData> {
        if !self.names().iter().any(|n| n == prom_name) {
            return None;
        }
        let field = self.field_of(prom_name);
        let fits = field == Field::Value || kind != proto::point::Kind::Counter;
        (fits && self.matches(labels)).then(|| super::series::SeriesData {
            prom_name: self.name.clone(),
            labels: labels.to_vec(),
            kind,
            field,
            buckets: Vec::new(),
        })
    }
}

/// The selections of `expr`, in evaluation order.
pub fn selections(expr: &Expr) -> Result<Vec<Selection>, ApiError> {
    let mut out = Vec::new();
    walk(expr, &mut out)?;
    Ok(out)
}

fn walk(expr: &Expr, out: &mut Vec<Selection>) -> Result<(), ApiError> {
    match expr {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::Paren(p) => walk(&p.expr, out),
        Expr::Unary(u) => walk(&u.expr, out),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if !matches!(op.as_str(), "+" | "-" | "*" | "/" | "%" | "^") {
                return Err(ApiError::BadData(format!("unsupported operator {op} in {expr}")));
            }
            if b.modifier.as_ref().is_some_and(|m| m.matching.is_some() || m.return_bool || m.card.labels().is_some()) {
                return Err(ApiError::BadData(format!("unsupported vector matching modifier in {expr}")));
            }
            walk(&b.lhs, out)?;
            walk(&b.rhs, out)
        }
        Expr::VectorSelector(vs) => {
            out.push(selection(vs, None)?);
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            out.push(selection(&ms.vs, Some(ms.range.as_secs_f64()))?);
            Ok(())
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) || a.param.is_some() {
                return Err(ApiError::BadData(format!("unsupported aggregation {op} in {expr}")));
            }
            walk(&a.expr, out)
        }
        Expr::Call(c) => {
            if !FUNCTIONS.contains(&c.func.name) {
                return Err(ApiError::BadData(format!("unsupported function {}()", c.func.name)));
            }
            c.args.args.iter().try_for_each(|a| walk(a, out))
        }
        other => Err(unsupported(other)),
    }
}

/// `bad_data` naming the construct.
pub fn unsupported(expr: &Expr) -> ApiError {
    let what = match expr {
        Expr::Aggregate(_) => "aggregation",
        Expr::Subquery(_) => "subquery",
        Expr::StringLiteral(_) => "string literal",
        Expr::MatrixSelector(_) => "range selector",
        Expr::Call(c) => return ApiError::BadData(format!("unsupported function {}()", c.func.name)),
        Expr::Extension(_) => "extension",
        _ => "expression",
    };
    ApiError::BadData(format!("unsupported {what} in {expr}"))
}

pub fn selection(vs: &VectorSelector, range_s: Option<f64>) -> Result<Selection, ApiError> {
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(ApiError::BadData(format!("unsupported offset or @ modifier in {vs}")));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(ApiError::BadData(format!("unsupported 'or' in label matchers of {vs}")));
    }
    let mut name = vs.name.clone();
    let mut matchers = Vec::new();
    let mut quantile = None;
    for m in &vs.matchers.matchers {
        match (m.name.as_str(), &m.op) {
            ("__name__", MatchOp::Equal) => name = Some(m.value.clone()),
            ("__name__", _) => return Err(ApiError::BadData(format!("unsupported non-equality match on the metric name in {vs}"))),
            (QUANTILE, MatchOp::Equal) => {
                let phi: f64 = m.value.parse().map_err(|_| ApiError::BadData(format!("quantile {:?} is not a number", m.value)))?;
                if !(0.0..=1.0).contains(&phi) {
                    return Err(ApiError::BadData(format!("quantile {phi} is outside [0, 1]")));
                }
                quantile = Some((phi, m.value.clone()));
            }
            (QUANTILE, _) => return Err(ApiError::BadData(format!("the quantile label only supports '=' (in {vs})"))),
            _ => matchers.push(m.clone()),
        }
    }
    let name = name.ok_or_else(|| ApiError::BadData(format!("a metric name is required in {vs}")))?;
    Ok(Selection { name, matchers, quantile, range_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(q: &str) -> Result<Vec<Selection>, ApiError> {
        selections(&crate::query::parse(q)?)
    }

    #[test]
    fn selector_parts() {
        let s = &sel(r#"http_server_duration{quantile="0.99", service_name="api", route=~"/a.*"}"#).unwrap()[0];
        assert_eq!(s.name, "http_server_duration");
        assert_eq!(s.quantile, Some((0.99, "0.99".to_string())));
        assert_eq!(s.matchers.len(), 2);
        let labels = [("route".to_string(), "/abc".to_string()), ("service_name".to_string(), "api".to_string())];
        assert!(s.matches(&labels));
        assert!(!s.matches(&labels[..1]));
        assert_eq!(sel(r#"{__name__="m"}"#).unwrap()[0].name, "m");
        assert!(sel("1 + 1").unwrap().is_empty());
        let all = sel(r#"histogram_quantile(0.9, sum by (x) (rate(a_count[5m]))) + avg(b{quantile="0.5"})"#).unwrap();
        assert_eq!(all.iter().map(|s| (s.name.as_str(), s.range_s)).collect::<Vec<_>>(), [("a_count", Some(300.0)), ("b", None)]);
        assert_eq!(sel(r#"b{quantile="0.5"}[1h]"#).unwrap()[0].range_s, Some(3600.0));
        assert_eq!(all[0].names(), ["a_count", "a"]);
        assert_eq!((all[0].field_of("a_count"), all[0].field_of("a")), (Field::Value, Field::Count));
        assert_eq!(sel("a_sum").unwrap()[0].field_of("a"), Field::Sum);
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (q, what) in [
            ("m offset 5m", "offset"),
            (r#"m{quantile="2"}"#, "outside [0, 1]"),
            (r#"m{quantile=~"0.9"}"#, "only supports '='"),
            ("m[5m:1m]", "subquery"),
            ("topk(3, m)", "aggregation topk"),
            ("m > 3", "operator >"),
            ("a / on(x) b", "vector matching"),
            ("delta(m[5m])", "delta"),
            (r#"label_replace(m, "a", "b", "c", "d")"#, "label_replace"),
        ] {
            let err = sel(q).unwrap_err();
            assert!(matches!(err, ApiError::BadData(_)));
            assert!(err.to_string().contains(what), "{q}: {err}");
        }
    }
}
