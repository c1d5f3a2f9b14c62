//! What data a query needs: one [`Selection`] per vector selector.

use crate::error::ApiError;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

/// The label that picks a quantile of a distribution.
pub const QUANTILE: &str = "quantile";

/// A vector selector reduced to what the store needs.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Exposed metric name.
    pub name: String,
    /// Matchers on labels other than the name and `quantile`.
    pub matchers: Vec<Matcher>,
    /// The φ of `quantile="φ"`, if given.
    pub quantile: Option<(f64, String)>,
    /// Seconds of data before the evaluation time the selection needs.
    pub lookback_s: f64,
}

impl Selection {
    /// Whether a series' exposed labels satisfy every matcher. A missing label
    /// matches as the empty string, as in Prometheus.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels.iter().find(|(k, _)| *k == m.name).map_or("", |(_, v)| v.as_str());
            m.is_match(value)
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
            walk(&b.lhs, out)?;
            walk(&b.rhs, out)
        }
        Expr::VectorSelector(vs) => {
            out.push(selection(vs, super::DEFAULT_WINDOW_S)?);
            Ok(())
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

pub fn selection(vs: &VectorSelector, lookback_s: f64) -> Result<Selection, ApiError> {
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
    Ok(Selection { name, matchers, quantile, lookback_s })
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
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (q, what) in [
            ("m offset 5m", "offset"),
            (r#"m{quantile="2"}"#, "outside [0, 1]"),
            (r#"m{quantile=~"0.9"}"#, "only supports '='"),
            ("m[5m:1m]", "subquery"),
            (r#"label_replace(m, "a", "b", "c", "d")"#, "label_replace"),
        ] {
            let err = sel(q).unwrap_err();
            assert!(matches!(err, ApiError::BadData(_)));
            assert!(err.to_string().contains(what), "{q}: {err}");
        }
    }
}
