//! dashboard-api's settings, read from `wrangler.toml` vars.
//!
//! The retention vars repeat the rollup's (a unit test pins them equal), so
//! that a query never plans to read buckets the rollup has already deleted.
//! Parsing takes a lookup function instead of `worker::Env`, so defaults and
//! error messages are tested natively.

use crate::error::ApiError;

/// Var names, as in `wrangler.toml`.
pub const RETENTION_1M_DAYS: &str = "RETENTION_1M_DAYS";
pub const RETENTION_1H_DAYS: &str = "RETENTION_1H_DAYS";
pub const RETENTION_1D_DAYS: &str = "RETENTION_1D_DAYS";

/// Days the rollup keeps each resolution's buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    pub minute_days: u64,
    pub hour_days: u64,
    pub day_days: u64,
}

impl Default for Kept {
    fn default() -> Kept {
        Kept { minute_days: 2, hour_days: 90, day_days: 730 }
    }
}

impl Kept {
    /// Reads the vars through `var`, using the default for any that is unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Kept, ApiError> {
        let d = Kept::default();
        Ok(Kept {
            minute_days: positive(&var, RETENTION_1M_DAYS, d.minute_days)?,
            hour_days: positive(&var, RETENTION_1H_DAYS, d.hour_days)?,
            day_days: positive(&var, RETENTION_1D_DAYS, d.day_days)?,
        })
    }

    /// Whether, at `now_s`, the buckets of `resolution` seconds that start
    /// at or after `from_s` are all still kept.
    pub fn covers(&self, resolution: i64, from_s: f64, now_s: f64) -> bool {
        let days = match resolution {
            60 => self.minute_days,
            3600 => self.hour_days,
            _ => self.day_days,
        };
        let first_bucket = (from_s / resolution as f64).floor() as i64 * resolution;
        first_bucket >= proto::aggregate::first_kept_start(resolution, days, now_s.floor() as i64)
    }
}

fn positive(var: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, ApiError> {
    proto::vars::positive(var, name, default).map_err(ApiError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NAME = "value"` lines of one `[env.<worker>.vars]` section.
    fn vars_of(worker: &str) -> Vec<(String, String)> {
        let toml = include_str!("../../wrangler.toml");
        let section = toml.split(&format!("[env.{worker}.vars]")).nth(1).unwrap().split("\n[").next().unwrap();
        section
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect()
    }

    #[test]
    fn wrangler_toml_gives_the_dashboard_the_rollups_retention() {
        let rollup = vars_of("rollup");
        let dashboard = vars_of("dashboard-api");
        for name in [RETENTION_1M_DAYS, RETENTION_1H_DAYS, RETENTION_1D_DAYS] {
            let value = |vars: &[(String, String)]| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            assert_eq!(value(&dashboard), value(&rollup), "{name}");
            assert!(value(&dashboard).is_some(), "{name} missing from [env.dashboard-api.vars]");
        }
        let lookup = |k: &str| dashboard.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(Kept::from_vars(lookup).unwrap(), Kept::default());
    }

    #[test]
    fn bad_values_name_the_var() {
        let e = Kept::from_vars(|k| (k == RETENTION_1H_DAYS).then(|| "0".to_string())).unwrap_err();
        assert!(e.to_string().contains("RETENTION_1H_DAYS must be a whole number"), "{e}");
    }

    #[test]
    fn minutes_are_covered_for_two_days() {
        let kept = Kept::default();
        let now = 1_800_000_000.0;
        let day = 86_400.0;
        assert!(kept.covers(60, now - 2.0 * day + 60.0, now));
        assert!(!kept.covers(60, now - 2.0 * day - 60.0, now));
        assert!(kept.covers(3600, now - 7.0 * day, now));
        assert!(!kept.covers(3600, now - 91.0 * day, now));
        assert!(kept.covers(86_400, now - 365.0 * day, now));
    }
}
