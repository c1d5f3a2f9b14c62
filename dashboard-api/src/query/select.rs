//! What data a query needs: one [`Selection`] per vector selector
//! ([`super::plan`] makes them while lowering a query).

use crate::error::ApiError;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;

/// The label that picks a quantile of a distribution.
pub const QUANTILE: &str = "quantile";

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

/// The selection a vector selector makes, with the range of the range
/// selector around it.
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
        Ok(crate::query::plan::lower(&crate::query::parse(q)?)?.selections)
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
}
