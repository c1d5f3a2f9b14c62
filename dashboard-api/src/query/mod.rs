//! PromQL: parsed once with `promql-parser` and lowered once into a typed
//! [`plan`], then evaluated in two steps so that evaluation stays a pure
//! function: the plan's selections ([`select`]) list the data the query
//! needs, the Worker fetches it from D1, and [`eval`] computes the result at
//! each evaluation time.

pub mod eval;
pub mod plan;
pub mod precheck;
pub mod select;
pub mod series;

use crate::config::Kept;
use crate::error::ApiError;
use promql_parser::parser::Expr;

/// Without a range selector or a step, a distribution's window at time t is
/// [t − 5m, t), like Prometheus' lookback.
pub const DEFAULT_WINDOW_S: f64 = 300.0;

/// Points per series a range query may return, as in Prometheus.
pub const MAX_POINTS_PER_SERIES: f64 = 11_000.0;

/// The stored resolutions ([`proto::retention::RESOLUTIONS`]), coarsest first.
const COARSEST_FIRST: [i64; 3] = {
    let [minute, hour, day] = proto::retention::RESOLUTIONS;
    [day as i64, hour as i64, minute as i64]
};

/// Parses a PromQL expression, after [`precheck`]ing what the parser
/// cannot take; syntax errors are `bad_data`. Every endpoint that reads
/// PromQL (`match[]` included) parses through here.
pub fn parse(query: &str) -> Result<Expr, ApiError> {
    precheck::check(query)?;
    promql_parser::parser::parse(query).map_err(|e| ApiError::BadData(format!("invalid query: {e}")))
}

/// When a query is evaluated: at one time, or from `start` to `end` every
/// `step` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Times {
    pub start: f64,
    pub end: f64,
    /// `None` for an instant query.
    pub step: Option<f64>,
}

impl Times {
    pub fn instant(t: f64) -> Times {
        Times { start: t, end: t, step: None }
    }

    /// A range query's times, checked as Prometheus checks them.
    pub fn range(start: f64, end: f64, step: f64) -> Result<Times, ApiError> {
        if end < start {
            return Err(ApiError::BadData("end timestamp must not be before start time".into()));
        }
        if step <= 0.0 || !step.is_finite() {
            return Err(ApiError::BadData("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
        }
        if (end - start) / step > MAX_POINTS_PER_SERIES {
            return Err(ApiError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        Ok(Times { start, end, step: Some(step) })
    }

    /// Every evaluation time.
    pub fn each(&self) -> Vec<f64> {
        match self.step {
            None => vec![self.start],
            Some(step) => {
                let n = ((self.end - self.start) / step).floor() as usize;
                (0..=n).map(|i| self.start + i as f64 * step).collect()
            }
        }
    }

    /// The window of a selector without a range: the step of a range query,
    /// else five minutes.
    pub fn default_window(&self) -> f64 {
        self.step.unwrap_or(DEFAULT_WINDOW_S)
    }

    /// The resolution to read: the coarsest whose buckets tile every window
    /// exactly (it divides the start time, the step and each window), unless
    /// retention has already deleted some of its buckets the query needs;
    /// then the finest coarser one that still has them all. Windows shorter
    /// than a minute read the minute buckets.
    pub fn resolution(&self, windows: &[f64], kept: &Kept, now: f64) -> i64 {
        let divides = |r: i64, x: f64| x.fract() == 0.0 && (x as i64).rem_euclid(r) == 0;
        let tiling = COARSEST_FIRST
            .into_iter()
            .find(|&r| divides(r, self.start) && self.step.is_none_or(|s| divides(r, s)) && windows.iter().all(|&w| divides(r, w)))
            .unwrap_or(60);
        let widest = windows.iter().copied().fold(0.0, f64::max);
        COARSEST_FIRST
            .into_iter()
            .rev()
            .filter(|&r| r >= tiling)
            .find(|&r| kept.covers(r, self.start - widest.max(r as f64), now))
            .unwrap_or(COARSEST_FIRST[0])
    }
}

/// The window a selection is read over at resolution `r`: its range, or the
/// default; at least one bucket.
pub fn window(range_s: Option<f64>, default: f64, r: i64) -> f64 {
    range_s.unwrap_or(default).max(r as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_limits_and_times() {
        let t = Times::range(60.0, 300.0, 60.0).unwrap();
        assert_eq!(t.each(), [60.0, 120.0, 180.0, 240.0, 300.0]);
        assert!(Times::range(10.0, 5.0, 1.0).unwrap_err().to_string().contains("before start"));
        assert!(Times::range(0.0, 5.0, 0.0).unwrap_err().to_string().contains("positive"));
        assert!(Times::range(0.0, 11_001.0, 1.0).unwrap_err().to_string().contains("11,000 points"));
        assert_eq!(Times::range(0.0, 11_000.0, 1.0).unwrap().each().len(), 11_001);
        assert_eq!(Times::instant(5.0).each(), [5.0]);
    }

    #[test]
    fn the_coarsest_resolution_that_tiles_every_window() {
        let day = 86_400.0;
        // "Now" just after the ranges below, so retention does not come in.
        let (kept, now) = (Kept::default(), 11.5 * day);
        let res = |t: Times, w: f64| t.resolution(&[w], &kept, now);
        assert_eq!(res(Times::range(10.0 * day, 11.0 * day, day).unwrap(), day), 86_400);
        assert_eq!(res(Times::range(10.0 * day, 11.0 * day, 3600.0).unwrap(), 3600.0), 3600);
        // An hourly step with a 5-minute range selector reads minutes.
        assert_eq!(res(Times::range(10.0 * day, 11.0 * day, 3600.0).unwrap(), 300.0), 60);
        assert_eq!(res(Times::range(10.0 * day + 60.0, 11.0 * day, 3600.0).unwrap(), 3600.0), 60);
        assert_eq!(res(Times::range(10.0 * day, 10.0 * day + 600.0, 15.0).unwrap(), 15.0), 60);
        assert_eq!(Times::instant(11.0 * day + 123.4).resolution(&[300.0], &kept, now), 60);
        assert_eq!(window(None, 15.0, 60), 60.0);
        assert_eq!(window(Some(3600.0), 15.0, 60), 3600.0);
    }

    #[test]
    fn ranges_past_a_resolutions_retention_read_a_coarser_one() {
        let day = 86_400.0;
        let (kept, now) = (Kept::default(), 100.0 * day);
        // The last 7 days at a 10-minute step: minute buckets are kept for
        // 2 days only, so the hours serve it.
        let week = Times::range(93.0 * day, now, 600.0).unwrap();
        assert_eq!(week.resolution(&[600.0], &kept, now), 3600);
        // The last day at the same step still reads minutes.
        let last_day = Times::range(99.0 * day, now, 600.0).unwrap();
        assert_eq!(last_day.resolution(&[600.0], &kept, now), 60);
        // A minute-aligned instant query 3 days ago, and a range 100 days
        // back that only the day buckets still hold.
        assert_eq!(Times::instant(97.0 * day).resolution(&[300.0], &kept, now), 3600);
        let old = Times::range(1.0 * day, 2.0 * day, 3600.0).unwrap();
        assert_eq!(old.resolution(&[3600.0], &kept, now), 86_400);
    }
}
