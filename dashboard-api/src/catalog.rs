//! The series catalog as Prometheus' metadata endpoints show it: label
//! names, label values, series and metric metadata. Pure functions over the
//! tenant's catalog rows, which the store reads.
//!
//! A distribution is exposed like a Prometheus summary: the series `name`
//! (read with `quantile="φ"`) and the counters `name_count` and `name_sum`.

use crate::error::ApiError;
use promql_parser::label::Matchers;
use promql_parser::parser::Expr;
use proto::point::Kind;
use std::collections::{BTreeMap, BTreeSet};

/// One catalog row in the exposed spelling.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    /// Sorted by name, without `__name__`.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    pub unit: String,
}

/// One exposed series: its name and labels.
pub type Series<'a> = (String, &'a [(String, String)]);

/// The series a catalog entry exposes.
fn exposed(e: &Entry) -> Vec<Series<'_>> {
    let mut out = vec![(e.name.clone(), e.labels.as_slice())];
    if e.kind != Kind::Counter {
        out.push((format!("{}_count", e.name), e.labels.as_slice()));
        out.push((format!("{}_sum", e.name), e.labels.as_slice()));
    }
    out
}

/// Parses `match[]` values: each must be a vector selector.
pub fn selectors(values: &[&str]) -> Result<Vec<Matchers>, ApiError> {
    values
        .iter()
        .map(|v| match crate::query::parse(v)? {
            Expr::VectorSelector(vs) => {
                let mut m = vs.matchers.clone();
                if let Some(name) = &vs.name {
                    m.matchers.push(promql_parser::label::Matcher::new(promql_parser::label::MatchOp::Equal, "__name__", name));
                }
                Ok(m)
            }
            _ => Err(ApiError::BadData(format!("match[] must be a series selector, not {v:?}"))),
        })
        .collect()
}

/// The catalog names `selectors` can select, when each names its metric
/// with `__name__=` (else any name can match, `None`): the store then
/// reads only those.
pub fn names(selectors: &[Matchers]) -> Option<Vec<String>> {
    if selectors.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for s in selectors {
        if !s.or_matchers.is_empty() {
            return None;
        }
        let name = s.matchers.iter().find(|m| m.name == "__name__" && m.op == promql_parser::label::MatchOp::Equal)?;
        out.extend(crate::query::select::catalog_names(&name.value));
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// `items` cut to `limit` (Prometheus' parameter, 0 for none), and whether
/// they were cut.
pub fn limited<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return (items, true);
    }
    (items, false)
}

fn selected(selectors: &[Matchers], name: &str, labels: &[(String, String)]) -> bool {
    let value = |k: &str| -> &str {
        if k == "__name__" {
            return name;
        }
        labels.iter().find(|(l, _)| l == k).map_or("", |(_, v)| v.as_str())
    };
    let all = |ms: &[promql_parser::label::Matcher]| ms.iter().all(|m| m.is_match(value(&m.name)));
    selectors.is_empty() || selectors.iter().any(|s| all(&s.matchers) || s.or_matchers.iter().any(|group| all(group)))
}

/// Every exposed series selected by any of `selectors` (all without any).
pub fn series<'a>(entries: &'a [Entry], selectors: &[Matchers]) -> Vec<Series<'a>> {
    entries.iter().flat_map(exposed).filter(|(name, labels)| selected(selectors, name, labels)).collect()
}

/// `/api/v1/series`: label sets with `__name__`.
pub fn series_json(entries: &[Entry], selectors: &[Matchers]) -> Vec<serde_json::Value> {
    series(entries, selectors)
        .into_iter()
        .map(|(name, labels)| {
            let mut m = serde_json::Map::new();
            m.insert("__name__".into(), name.into());
            for (k, v) in labels {
                m.insert(k.clone(), v.as_str().into());
            }
            serde_json::Value::Object(m)
        })
        .collect()
}

/// `/api/v1/labels`: label names of the selected series, sorted.
pub fn label_names(entries: &[Entry], selectors: &[Matchers]) -> Vec<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (_, labels) in series(entries, selectors) {
        names.insert("__name__".into());
        names.extend(labels.iter().map(|(k, _)| k.clone()));
    }
    names.into_iter().collect()
}

/// `/api/v1/label/<name>/values`: the label's values among the selected
/// series, sorted.
pub fn label_values(entries: &[Entry], selectors: &[Matchers], label: &str) -> Vec<String> {
    let mut values: BTreeSet<String> = BTreeSet::new();
    for (name, labels) in series(entries, selectors) {
        if label == "__name__" {
            values.insert(name);
        } else if let Some((_, v)) = labels.iter().find(|(k, _)| k == label) {
            values.insert(v.clone());
        }
    }
    values.into_iter().collect()
}

/// `/api/v1/metadata`: type, help and unit per metric name, optionally of
/// one metric.
pub fn metadata(entries: &[Entry], metric: Option<&str>) -> serde_json::Value {
    let mut out: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for e in entries {
        let mut names = vec![(e.name.clone(), e.kind.as_str())];
        if e.kind != Kind::Counter {
            names.push((format!("{}_count", e.name), "counter"));
            names.push((format!("{}_sum", e.name), "counter"));
        }
        for (name, kind) in names {
            if metric.is_some_and(|m| m != name) {
                continue;
            }
            let kind = match kind {
                "distribution" => "summary",
                k => k,
            };
            out.entry(name).or_insert_with(|| serde_json::json!([{ "type": kind, "help": "", "unit": e.unit }]));
        }
    }
    serde_json::Value::Object(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: Kind, labels: &[(&str, &str)]) -> Entry {
        Entry { name: name.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), kind, unit: "ms".into() }
    }

    fn catalog() -> Vec<Entry> {
        vec![
            entry("lat", Kind::Distribution, &[("route", "/a"), ("service_name", "api")]),
            entry("lat", Kind::Distribution, &[("route", "/b"), ("service_name", "web")]),
            entry("requests", Kind::Counter, &[("code", "200")]),
        ]
    }

    #[test]
    fn distributions_expose_count_and_sum_series() {
        let entries = catalog();
        let all = series(&entries, &[]);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lat", "lat_count", "lat_sum", "lat", "lat_count", "lat_sum", "requests"]);
        assert_eq!(label_values(&catalog(), &[], "__name__"), ["lat", "lat_count", "lat_sum", "requests"]);
    }

    #[test]
    fn match_selects_series_for_every_endpoint() {
        let m = selectors(&[r#"lat{service_name="web"}"#, r#"{code=~"2.."}"#]).unwrap();
        let json = serde_json::Value::Array(series_json(&catalog(), &m));
        assert_eq!(json, serde_json::json!([{"__name__":"lat","route":"/b","service_name":"web"},{"__name__":"requests","code":"200"}]));
        assert_eq!(label_names(&catalog(), &m), ["__name__", "code", "route", "service_name"]);
        assert_eq!(label_values(&catalog(), &m, "route"), ["/b"]);
        assert_eq!(label_values(&catalog(), &[], "route"), ["/a", "/b"]);
        assert!(selectors(&["rate(x[5m])"]).is_err());
        assert!(selectors(&["{"]).is_err());
    }

    #[test]
    fn selectors_with_names_read_only_those_names() {
        assert_eq!(
            names(&selectors(&["lat_count", r#"{__name__="req", code="200"}"#]).unwrap()),
            Some(vec!["lat".into(), "lat_count".into(), "req".into()])
        );
        assert_eq!(names(&selectors(&["lat", r#"{code="200"}"#]).unwrap()), None, "one selector without a name");
        assert_eq!(names(&[]), None);
        assert_eq!(limited(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(limited(vec![1, 2, 3], 0), (vec![1, 2, 3], false));
        assert_eq!(limited(vec![1, 2, 3], 3), (vec![1, 2, 3], false));
    }

    #[test]
    fn metadata_types() {
        let md = metadata(&catalog(), None);
        assert_eq!(md["lat"][0]["type"], "summary");
        assert_eq!(md["lat_count"][0]["type"], "counter");
        assert_eq!(md["requests"][0], serde_json::json!({"type":"counter","help":"","unit":"ms"}));
        assert_eq!(metadata(&catalog(), Some("requests")).as_object().unwrap().len(), 1);
    }
}
