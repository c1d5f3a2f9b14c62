//! What one request may make dashboard-api read and hold, checked before it
//! is read: every budget a query can exceed is named in the error, with how
//! to narrow the request. A Worker has 128 MB and 1,000 D1 queries per
//! invocation; a decoded bucket holds about 1.5 KB, so the buckets budget
//! is what keeps a query inside the memory.

use crate::error::ApiError;

/// Var name, as in `wrangler.toml`.
pub const MAX_QUERY_BUCKETS: &str = "MAX_QUERY_BUCKETS";

/// Buckets (series × buckets of the range at the resolution read) one
/// query reads at most, by default: about 45 MB decoded.
pub const DEFAULT_MAX_QUERY_BUCKETS: u64 = 30_000;

/// Series one query selects at most, over all its selectors.
pub const MAX_SERIES_PER_QUERY: usize = 10_000;

/// Catalog rows one query looks through at most to find its series (label
/// matchers are applied to the rows of the names it selects).
pub const MAX_SCANNED_SERIES: usize = 50_000;

/// Vector and range selectors in one query.
pub const MAX_SELECTORS: usize = 64;

/// Quantiles one `/api/v1/json/percentiles` request asks for.
pub const MAX_QUANTILES: usize = 20;

/// Bytes of a POST body (form-encoded parameters).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Catalog rows a catalog endpoint reads at most; beyond them the answer is
/// cut, with a warning, as Prometheus cuts at its `limit` parameter.
pub const MAX_CATALOG_ROWS: usize = 20_000;

/// The budgets that can be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_query_buckets: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_query_buckets: DEFAULT_MAX_QUERY_BUCKETS }
    }
}

impl Limits {
    /// Reads the vars through `var`, using the default for any that is unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Limits, ApiError> {
        let d = Limits::default();
        Ok(Limits { max_query_buckets: proto::vars::positive(&var, MAX_QUERY_BUCKETS, d.max_query_buckets).map_err(ApiError::Config)? })
    }
}

/// A query's selectors, counted before anything is read.
pub fn selectors(n: usize) -> Result<(), ApiError> {
    if n > MAX_SELECTORS {
        return Err(ApiError::BadData(format!(
            "the query has {n} selectors, more than the {MAX_SELECTORS} allowed; split it into several queries"
        )));
    }
    Ok(())
}

/// A request's quantiles.
pub fn quantiles(n: usize) -> Result<(), ApiError> {
    if n > MAX_QUANTILES {
        return Err(ApiError::BadData(format!("{n} quantiles, more than the {MAX_QUANTILES} allowed per request")));
    }
    Ok(())
}

/// Buckets of `resolution` seconds that start in [from, to).
pub fn buckets(from: f64, to: f64, resolution: i64) -> u64 {
    let r = resolution as f64;
    let first = (from / r).floor();
    let last = (to / r).ceil();
    (last - first).max(0.0) as u64
}

/// The series the store found so far, checked as it finds them.
pub fn series(found: usize, scanned: usize) -> Result<(), ApiError> {
    if found > MAX_SERIES_PER_QUERY {
        return Err(ApiError::Execution(format!(
            "the query selects more than {MAX_SERIES_PER_QUERY} series; narrow its selectors with label matchers"
        )));
    }
    if scanned > MAX_SCANNED_SERIES {
        return Err(ApiError::Execution(format!(
            "the query's metric names have more than {MAX_SCANNED_SERIES} series to match against; select fewer metrics per query"
        )));
    }
    Ok(())
}

/// What the selected series would read, before it is read: the sum over
/// selections of series × buckets in their range.
pub fn reads(per_selection: &[(usize, u64)], limits: &Limits) -> Result<(), ApiError> {
    let total: u64 = per_selection.iter().map(|&(series, buckets)| series as u64 * buckets).sum();
    if total > limits.max_query_buckets {
        let series: usize = per_selection.iter().map(|s| s.0).sum();
        return Err(ApiError::Execution(format!(
            "the query would read {total} buckets ({series} series over its range), more than the {} allowed; \
             narrow its selectors with label matchers, shorten the range, or use a step of an hour or a day \
             so that coarser buckets serve it",
            limits.max_query_buckets
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_name_themselves_and_the_way_out() {
        assert!(selectors(MAX_SELECTORS).is_ok());
        let e = selectors(3000).unwrap_err();
        assert!(matches!(e, ApiError::BadData(_)) && e.to_string().contains("3000 selectors"), "{e}");
        assert!(quantiles(21).unwrap_err().to_string().contains("21 quantiles"));
        assert!(series(MAX_SERIES_PER_QUERY, 0).is_ok());
        assert_eq!(series(MAX_SERIES_PER_QUERY + 1, 0).unwrap_err().status(), 422);
        assert!(series(1, MAX_SCANNED_SERIES + 1).unwrap_err().to_string().contains("fewer metrics"));
        let limits = Limits::default();
        // A day of minutes over 100 series: 144,100 buckets.
        let day = buckets(0.0, 86_400.0 + 60.0, 60);
        assert_eq!(day, 1441);
        let e = reads(&[(100, day)], &limits).unwrap_err();
        assert_eq!(e.status(), 422);
        assert!(e.to_string().contains("144100 buckets") && e.to_string().contains("label matchers"), "{e}");
        assert!(reads(&[(20, day)], &limits).is_ok());
        assert_eq!(buckets(90.0, 150.0, 60), 2);
        assert_eq!(buckets(150.0, 90.0, 60), 0);
    }

    #[test]
    fn the_buckets_budget_is_a_var() {
        assert_eq!(Limits::from_vars(|_| None).unwrap(), Limits::default());
        let l = Limits::from_vars(|k| (k == MAX_QUERY_BUCKETS).then(|| "200000".into())).unwrap();
        assert_eq!(l.max_query_buckets, 200_000);
        assert!(Limits::from_vars(|_| Some("lots".into())).is_err());
    }
}
