//! The stored resolutions and how long each is kept: one rule for the
//! rollup (which aggregates into every resolution and deletes what expires),
//! dashboard-api (which reads a coarser resolution instead of buckets that
//! are gone) and ingest (which refuses points older than the longest).

const DAY_S: i64 = 86_400;

/// Bucket widths in seconds, finest first: 1 minute, 1 hour, 1 day. Every
/// point updates one bucket of each, so coarser buckets are exact merges of
/// finer ones.
pub const RESOLUTIONS: [u32; 3] = [60, 3600, 86_400];

/// Var names, as in `wrangler.toml`; the rollup and dashboard-api read the
/// same ones (a unit test of each pins their values equal).
pub const RETENTION_1M_DAYS: &str = "RETENTION_1M_DAYS";
pub const RETENTION_1H_DAYS: &str = "RETENTION_1H_DAYS";
pub const RETENTION_1D_DAYS: &str = "RETENTION_1D_DAYS";

/// Days each resolution's buckets are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    pub minute_days: u64,
    pub hour_days: u64,
    pub day_days: u64,
}

impl Default for Kept {
    fn default() -> Kept {
        Kept::DEFAULT
    }
}

impl Kept {
    /// The defaults, as `wrangler.toml` sets them.
    pub const DEFAULT: Kept = Kept { minute_days: 2, hour_days: 90, day_days: 730 };

    /// Reads the vars through `var`, using the default for any that is
    /// unset. The error names the var and its value.
    ///
    /// A coarser resolution must be kept at least as long as a finer one:
    /// queries fall back to the coarser buckets once the finer are gone,
    /// and the rollup keeps a series (and its minute blocks) only while its
    /// hour buckets are kept, so shorter hours than minutes would leave
    /// minutes nobody can find.
    pub fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Kept, String> {
        let d = Kept::default();
        let kept = Kept {
            minute_days: crate::vars::positive(var, RETENTION_1M_DAYS, d.minute_days)?,
            hour_days: crate::vars::positive(var, RETENTION_1H_DAYS, d.hour_days)?,
            day_days: crate::vars::positive(var, RETENTION_1D_DAYS, d.day_days)?,
        };
        if kept.minute_days > kept.hour_days || kept.hour_days > kept.day_days {
            return Err(format!(
                "{RETENTION_1M_DAYS} ({}) <= {RETENTION_1H_DAYS} ({}) <= {RETENTION_1D_DAYS} ({}) must hold: \
                 a coarser resolution is kept at least as long as a finer one",
                kept.minute_days, kept.hour_days, kept.day_days
            ));
        }
        Ok(kept)
    }

    /// Days the buckets of `resolution` seconds are kept.
    pub fn days(&self, resolution: i64) -> u64 {
        match resolution {
            60 => self.minute_days,
            3600 => self.hour_days,
            _ => self.day_days,
        }
    }

    /// The oldest bucket start of `resolution` seconds still kept at
    /// `now_s`: a bucket [start, start + resolution) is kept while
    /// start + resolution > now − keep.
    pub fn first_kept_start(&self, resolution: i64, now_s: i64) -> i64 {
        now_s - self.days(resolution) as i64 * DAY_S - resolution + 1
    }

    /// Whether the bucket of `resolution` starting at `bucket_start` is
    /// past its retention at `now_s`.
    pub fn expired(&self, resolution: i64, bucket_start: i64, now_s: i64) -> bool {
        bucket_start < self.first_kept_start(resolution, now_s)
    }

    /// Whether, at `now_s`, the buckets of `resolution` seconds that start
    /// at or after `from_s` are all still kept.
    pub fn covers(&self, resolution: i64, from_s: f64, now_s: f64) -> bool {
        let first_bucket = (from_s / resolution as f64).floor() as i64 * resolution;
        !self.expired(resolution, first_bucket, now_s.floor() as i64)
    }
}

/// How far behind the receiving clock a point's time may be: the default
/// retention of day buckets (2 years), the longest kept.
pub const MAX_PAST_DAYS: u64 = Kept::DEFAULT.day_days;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_resolution_keeps_its_own_days() {
        let kept = Kept::default();
        let now = 1_800_000_000;
        assert!(!kept.expired(60, now - 2 * DAY_S, now), "a minute ending inside 2 days is kept");
        assert!(kept.expired(60, now - 2 * DAY_S - 60, now));
        assert!(!kept.expired(3600, now - 3 * DAY_S, now));
        assert!(kept.expired(3600, now - 91 * DAY_S, now));
        assert!(!kept.expired(86_400, now - 365 * DAY_S, now));
        assert!(kept.expired(86_400, now - 732 * DAY_S, now));
        let short = Kept { minute_days: 1, hour_days: 2, day_days: 3 };
        let now = 10 * DAY_S;
        let firsts = RESOLUTIONS.map(|r| short.first_kept_start(i64::from(r), now));
        assert_eq!(firsts, [9 * DAY_S - 59, 8 * DAY_S - 3599, 7 * DAY_S - 86_399]);
    }

    #[test]
    fn covers_reads_the_bucket_a_time_falls_in() {
        let kept = Kept::default();
        let (now, day) = (1_800_000_000.0, 86_400.0);
        assert!(kept.covers(60, now - 2.0 * day + 60.0, now));
        assert!(!kept.covers(60, now - 2.0 * day - 60.0, now));
        assert!(kept.covers(3600, now - 7.0 * day, now));
        assert!(!kept.covers(3600, now - 91.0 * day, now));
        assert!(kept.covers(86_400, now - 365.0 * day, now));
    }

    #[test]
    fn vars_override_the_defaults_and_bad_values_name_the_var() {
        assert_eq!(Kept::from_vars(&|_| None), Ok(Kept::default()));
        let kept = Kept::from_vars(&|k| (k == RETENTION_1H_DAYS).then(|| " 30 ".to_string())).unwrap();
        assert_eq!(kept, Kept { hour_days: 30, ..Kept::default() });
        let e = Kept::from_vars(&|k| (k == RETENTION_1D_DAYS).then(|| "0".to_string())).unwrap_err();
        assert!(e.contains("RETENTION_1D_DAYS must be a whole number") && e.contains("\"0\""), "{e}");
    }

    #[test]
    fn a_coarser_resolution_is_kept_at_least_as_long_as_a_finer_one() {
        let vars = |m: &'static str, h: &'static str, d: &'static str| {
            move |k: &str| match k {
                RETENTION_1M_DAYS => Some(m.to_string()),
                RETENTION_1H_DAYS => Some(h.to_string()),
                RETENTION_1D_DAYS => Some(d.to_string()),
                _ => None,
            }
        };
        assert_eq!(Kept::from_vars(&vars("7", "7", "7")), Ok(Kept { minute_days: 7, hour_days: 7, day_days: 7 }));
        for (m, h, d) in [("8", "7", "730"), ("2", "800", "730")] {
            let e = Kept::from_vars(&vars(m, h, d)).unwrap_err();
            assert!(e.contains("RETENTION_1M_DAYS") && e.contains(&format!("({h})")) && e.contains("must hold"), "{e}");
        }
    }

    #[test]
    fn the_oldest_point_accepted_is_as_old_as_the_longest_default_retention() {
        let d = Kept::default();
        assert_eq!(MAX_PAST_DAYS, d.minute_days.max(d.hour_days).max(d.day_days));
    }
}
