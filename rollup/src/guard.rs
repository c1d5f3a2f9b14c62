//! The cardinality guard: each tenant's metric keeps at most a configured
//! number of series in the catalog. Points of further new series are not
//! dropped but folded into one overflow series of that metric, labelled
//! `otel.metric.overflow="true"` as the OpenTelemetry SDKs label theirs.
//!
//! The guard lives in the rollup because only the catalog knows how many
//! series a metric has across all requests; the rollup is its one writer.
//! Counts and sums stay exact; what is lost for folded points is only which
//! series they belonged to.

use crate::series::Series;
use std::collections::{BTreeMap, HashMap};

pub use crate::series::OVERFLOW_LABEL;

/// Default series per tenant and metric (the OpenTelemetry SDKs' default
/// cardinality limit).
pub const DEFAULT_MAX_SERIES_PER_METRIC: u64 = 2000;

/// Decides which `new` series (indexes into `series`, not in the catalog
/// yet) fit their metric's limit, given `counts` of catalog series per
/// (tenant, metric). Returns the series to fold, each with the index of the
/// overflow series that takes its points, which is appended to `series`
/// (of the first folded series' kind and unit) unless it is there already.
/// New series are admitted in label order, so the outcome does not depend
/// on the order points arrived in.
pub fn fold(series: &mut Vec<Series<'_>>, new: &[u32], counts: &HashMap<(String, String), u64>, limit: u64) -> HashMap<u32, u32> {
    let mut by_metric: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for &i in new {
        let s = &series[i as usize];
        by_metric.entry((s.tenant, s.metric)).or_default().push(i);
    }
    let mut folded = Vec::new();
    for ((tenant, metric), mut members) in by_metric {
        members.sort_by(|a, b| series[*a as usize].labels.cmp(&series[*b as usize].labels));
        members.dedup();
        let mut count = counts.get(&(tenant.to_owned(), metric.to_owned())).copied().unwrap_or(0);
        for i in members {
            if series[i as usize].is_overflow() {
                continue;
            }
            if count < limit {
                count += 1;
            } else {
                folded.push(i);
            }
        }
    }
    let mut overflows: HashMap<u128, u32> =
        series.iter().enumerate().filter(|(_, s)| s.is_overflow()).map(|(i, s)| (s.hash, i as u32)).collect();
    let mut out = HashMap::new();
    for i in folded {
        let overflow = series[i as usize].overflow();
        let next = series.len() as u32;
        let at = *overflows.entry(overflow.hash).or_insert(next);
        if at == next {
            series.push(overflow);
        }
        out.insert(i, at);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::Kind;

    fn keys(metric: &'static str, n: usize) -> Vec<Series<'static>> {
        (0..n).map(|i| Series::new("t", metric, vec![("i", Box::leak(format!("{i:03}").into_boxed_str()))], Kind::Gauge, "")).collect()
    }

    #[test]
    fn new_series_beyond_the_limit_fold_into_the_overflow_series() {
        let mut series: Vec<Series<'_>> = keys("m", 10).into_iter().chain(keys("other", 3)).collect();
        let new: Vec<u32> = (0..13).rev().collect();
        let counts = HashMap::from([(("t".to_string(), "m".to_string()), 4)]);
        let folded = fold(&mut series, &new, &counts, 6);
        // Two more fit "m" (in label order: 000 and 001); the other eight fold.
        assert_eq!(folded.len(), 8);
        assert!(!folded.contains_key(&0) && !folded.contains_key(&1));
        let overflow = &series[folded[&9] as usize];
        assert_eq!(overflow.json(), r#"{"otel.metric.overflow":"true"}"#);
        assert_eq!(series.len(), 14, "one overflow series appended");
        assert!((10..13).all(|i| !folded.contains_key(&i)), "other metrics are under the limit");
    }

    #[test]
    fn an_overflow_series_is_never_folded() {
        let mut series = vec![keys("m", 1)[0].overflow()];
        let counts = HashMap::from([(("t".to_string(), "m".to_string()), 100)]);
        assert!(fold(&mut series, &[0], &counts, 1).is_empty());
    }
}
