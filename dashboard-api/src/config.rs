//! dashboard-api's settings, read from `wrangler.toml` vars.
//!
//! The retention vars repeat the rollup's (a unit test pins them equal), so
//! that a query never plans to read buckets the rollup has already deleted.
//! Parsing takes a lookup function instead of `worker::Env`, so defaults and
//! error messages are tested natively.

use crate::error::ApiError;
pub use proto::retention::{Kept, RETENTION_1D_DAYS, RETENTION_1H_DAYS, RETENTION_1M_DAYS};

/// How long the rollup keeps each resolution, read through `var`; the
/// default for any var that is unset.
pub fn kept(var: impl Fn(&str) -> Option<String>) -> Result<Kept, ApiError> {
    Kept::from_vars(&var).map_err(ApiError::Config)
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
        assert_eq!(kept(lookup).unwrap(), Kept::default());
    }

    #[test]
    fn bad_values_name_the_var() {
        let e = kept(|k| (k == RETENTION_1H_DAYS).then(|| "0".to_string())).unwrap_err();
        assert!(e.to_string().contains("RETENTION_1H_DAYS must be a whole number"), "{e}");
    }
}
