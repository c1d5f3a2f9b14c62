//! The cardinality guard: each tenant's metric keeps at most a configured
//! number of series in the catalog. Points of further new series are not
//! dropped but folded into one overflow series of that metric, labelled
//! `otel.metric.overflow="true"` as the OpenTelemetry SDKs label theirs.
//!
//! The guard lives in the rollup because only the catalog knows how many
//! series a metric has across all requests; the rollup is its one writer.
//! Counts and sums stay exact; what is lost for folded points is only which
//! series they belonged to.

use crate::accumulate::SeriesKey;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The label of overflow series.
pub const OVERFLOW_LABEL: &str = "otel.metric.overflow";

/// Default series per tenant and metric (the OpenTelemetry SDKs' default
/// cardinality limit).
pub const DEFAULT_MAX_SERIES_PER_METRIC: u64 = 2000;

/// The overflow series of a key's metric.
pub fn overflow_of(key: &SeriesKey) -> SeriesKey {
    SeriesKey { labels: format!(r#"{{"{OVERFLOW_LABEL}":"true"}}"#), ..key.clone() }
}

fn is_overflow(key: &SeriesKey) -> bool {
    key.labels.contains(&format!(r#""{OVERFLOW_LABEL}":"true""#))
}

/// Decides which `new` series (not in the catalog yet) fit their metric's
/// limit, given `counts` of catalog series per (tenant, metric). Returns the
/// series to fold, each with the overflow series that takes its points. New
/// series are admitted in key order, so the outcome does not depend on the
/// order points arrived in.
pub fn fold(new: &[&SeriesKey], counts: &HashMap<(String, String), u64>, limit: u64) -> HashMap<SeriesKey, SeriesKey> {
    let mut by_metric: BTreeMap<(&str, &str), Vec<&SeriesKey>> = BTreeMap::new();
    for k in new {
        by_metric.entry((k.tenant.as_str(), k.metric.as_str())).or_default().push(k);
    }
    let mut folded = HashMap::new();
    for ((tenant, metric), mut keys) in by_metric {
        keys.sort();
        keys.dedup();
        let mut count = counts.get(&(tenant.to_owned(), metric.to_owned())).copied().unwrap_or(0);
        let mut seen = HashSet::new();
        for k in keys {
            if is_overflow(k) || !seen.insert(k) {
                continue;
            }
            if count < limit {
                count += 1;
            } else {
                folded.insert(k.clone(), overflow_of(k));
            }
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::Kind;

    fn key(metric: &str, i: usize) -> SeriesKey {
        SeriesKey { tenant: "t".into(), metric: metric.into(), labels: format!(r#"{{"i":"{i:03}"}}"#), kind: Kind::Gauge, unit: String::new() }
    }

    #[test]
    fn new_series_beyond_the_limit_fold_into_the_overflow_series() {
        let keys: Vec<SeriesKey> = (0..10).map(|i| key("m", i)).chain((0..3).map(|i| key("other", i))).collect();
        let refs: Vec<&SeriesKey> = keys.iter().rev().collect();
        let counts = HashMap::from([(("t".to_string(), "m".to_string()), 4)]);
        let folded = fold(&refs, &counts, 6);
        // Two more fit "m" (in key order: 000 and 001); the other eight fold.
        assert_eq!(folded.len(), 8);
        assert!(!folded.contains_key(&key("m", 0)) && !folded.contains_key(&key("m", 1)));
        assert_eq!(folded[&key("m", 9)].labels, r#"{"otel.metric.overflow":"true"}"#);
        assert!(keys.iter().filter(|k| k.metric == "other").all(|k| !folded.contains_key(k)));
    }

    #[test]
    fn an_overflow_series_is_never_folded() {
        let o = overflow_of(&key("m", 0));
        let counts = HashMap::from([(("t".to_string(), "m".to_string()), 100)]);
        assert!(fold(&[&o], &counts, 1).is_empty());
    }
}
