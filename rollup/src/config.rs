//! The rollup's settings, read from `wrangler.toml` vars: how much one run
//! may do, how long each resolution is kept, and the cardinality limit.
//!
//! Parsing takes a lookup function instead of `worker::Env`, so defaults and
//! error messages are tested natively.

use crate::error::RollupError;
use crate::guard::DEFAULT_MAX_SERIES_PER_METRIC;
use crate::retention::Retention;

/// Var names, as in `wrangler.toml`.
pub const MAX_ARCHIVES_PER_RUN: &str = "MAX_ARCHIVES_PER_RUN";
pub const MAX_POINTS_PER_RUN: &str = "MAX_POINTS_PER_RUN";
pub const MAX_RUN_MS: &str = "MAX_RUN_MS";
pub const MAX_SERIES_PER_METRIC: &str = "MAX_SERIES_PER_METRIC";
pub use proto::retention::{RETENTION_1D_DAYS, RETENTION_1H_DAYS, RETENTION_1M_DAYS};
pub const DEDUP_WINDOW_DAYS: &str = "DEDUP_WINDOW_DAYS";
pub const MAX_DELETES_PER_RUN: &str = "MAX_DELETES_PER_RUN";

/// How much one run may apply before it leaves the rest to the next one.
/// A run always applies at least one archive, so a single large archive
/// cannot stall the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub archives: u32,
    pub points: u64,
    /// Wall time since the run started, checked before each archive.
    pub run_ms: u64,
}

/// Which budget ended a run early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Archives,
    Points,
    Time,
}

impl Budget {
    /// Whether a run that has applied `archives` archives holding `points`
    /// points in `elapsed_ms` must stop before the next one, and why.
    pub fn exhausted(&self, archives: u64, points: u64, elapsed_ms: u64) -> Option<Limit> {
        if archives == 0 {
            return None;
        }
        if archives >= u64::from(self.archives) {
            Some(Limit::Archives)
        } else if points >= self.points {
            Some(Limit::Points)
        } else if elapsed_ms >= self.run_ms {
            Some(Limit::Time)
        } else {
            None
        }
    }
}

impl Budget {
    /// Whether a run must stop between two chunks of one archive: the
    /// points or the time are spent (the archive budget counts whole
    /// archives only). What the archive has left waits for the next run.
    pub fn exhausted_within_archive(&self, points: u64, elapsed_ms: u64) -> Option<Limit> {
        if points >= self.points {
            Some(Limit::Points)
        } else if elapsed_ms >= self.run_ms {
            Some(Limit::Time)
        } else {
            None
        }
    }
}

/// Everything a run is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub budget: Budget,
    pub max_series_per_metric: u64,
    pub retention: Retention,
    /// Rows one run deletes at most from each expiring table (and each
    /// resolution of `aggregates`).
    pub max_deletes: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // 100,000 points take about two seconds of CPU locally, D1
            // included (docs/PERFORMANCE.md): a full run stays inside the
            // 30 s a minutely cron handler gets. A run reads its archives
            // into one commit (crate::pending), so their number costs an R2
            // read each and no D1 writes: 1,000 stays well inside the
            // 10,000 subrequests of an invocation.
            budget: Budget { archives: 1_000, points: 500_000, run_ms: 20_000 },
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            retention: Retention::default(),
            max_deletes: 5_000,
        }
    }
}

impl Config {
    /// Reads the vars through `var`, using the default for any that is unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, RollupError> {
        let d = Config::default();
        let r = d.retention;
        Ok(Config {
            budget: Budget {
                archives: positive(&var, MAX_ARCHIVES_PER_RUN, u64::from(d.budget.archives))? as u32,
                points: positive(&var, MAX_POINTS_PER_RUN, d.budget.points)?,
                run_ms: positive(&var, MAX_RUN_MS, d.budget.run_ms)?,
            },
            max_series_per_metric: positive(&var, MAX_SERIES_PER_METRIC, d.max_series_per_metric)?,
            retention: Retention {
                kept: proto::retention::Kept::from_vars(&var).map_err(RollupError::Config)?,
                dedup_days: positive(&var, DEDUP_WINDOW_DAYS, r.dedup_days)?,
            },
            max_deletes: positive(&var, MAX_DELETES_PER_RUN, u64::from(d.max_deletes))? as u32,
        })
    }
}

fn positive(var: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, RollupError> {
    proto::vars::positive(var, name, default).map_err(RollupError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, RollupError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn unset_vars_take_the_documented_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, Config::default());
        let kept = c.retention.kept;
        assert_eq!((kept.minute_days, kept.hour_days, kept.day_days, c.retention.dedup_days), (2, 90, 730, 7));
    }

    #[test]
    fn wrangler_toml_sets_the_defaults() {
        // The rollup's vars section, as `NAME = "value"` lines.
        let toml = include_str!("../../wrangler.toml");
        let section = toml.split("[env.rollup.vars]").nth(1).unwrap().split("\n[").next().unwrap();
        let vars: Vec<(&str, &str)> =
            section.lines().filter_map(|l| l.split_once(" = ")).map(|(k, v)| (k.trim(), v.trim().trim_matches('"'))).collect();
        assert_eq!(vars.len(), 9, "{vars:?}");
        assert_eq!(parse(&vars).unwrap(), Config::default());
    }

    #[test]
    fn vars_override_defaults_and_bad_values_name_the_var() {
        let c = parse(&[(MAX_POINTS_PER_RUN, "2000"), (RETENTION_1H_DAYS, " 30 ")]).unwrap();
        assert_eq!(c.budget.points, 2000);
        assert_eq!(c.retention.kept.hour_days, 30);
        for bad in ["0", "-1", "2.5", "lots", "99999999999"] {
            let e = parse(&[(MAX_RUN_MS, bad)]).unwrap_err().to_string();
            assert!(e.contains(MAX_RUN_MS) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_run_stops_at_the_first_budget_it_reaches_but_applies_one_archive() {
        let b = Budget { archives: 3, points: 1000, run_ms: 500 };
        assert_eq!(b.exhausted(0, 5000, 9000), None, "the first archive always goes");
        assert_eq!(b.exhausted(1, 999, 499), None);
        assert_eq!(b.exhausted(1, 1000, 0), Some(Limit::Points));
        assert_eq!(b.exhausted(2, 0, 500), Some(Limit::Time));
        assert_eq!(b.exhausted(3, 0, 0), Some(Limit::Archives));
        // Between an archive's chunks, only points and time count.
        assert_eq!(b.exhausted_within_archive(999, 499), None);
        assert_eq!(b.exhausted_within_archive(1000, 0), Some(Limit::Points));
        assert_eq!(b.exhausted_within_archive(0, 500), Some(Limit::Time));
    }
}
