//! Points → aggregates per series, resolution and bucket: the rollup's
//! functional core.

use crate::series::Series;
use proto::aggregate::Aggregate;
use proto::point::{Kind, Point};
use proto::retention::RESOLUTIONS;
use std::collections::BTreeMap;

/// Where an aggregate row lives, given its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub resolution: u32,
    /// Unix seconds, a multiple of `resolution`.
    pub bucket_start: i64,
}

/// Aggregates built from a chunk, not yet merged with what D1 holds, per
/// series (an index into the chunk's [`Keyed::series`](crate::series::Keyed)).
#[derive(Debug, Default)]
pub struct Accumulator {
    pub series: BTreeMap<u32, BTreeMap<Slot, Aggregate>>,
    pub points: u64,
}

impl Accumulator {
    /// Adds a (delta) point to one bucket of each resolution of `series`,
    /// whose kind and unit decide the aggregate's shape.
    pub fn add_point(&mut self, series: u32, kind: Kind, unit: &str, p: &Point) {
        let with_samples = kind != Kind::Counter;
        let slots = self.series.entry(series).or_default();
        let seconds = (p.time_unix_nano / 1_000_000_000) as i64;
        for resolution in RESOLUTIONS {
            let slot = Slot { resolution, bucket_start: seconds - seconds.rem_euclid(i64::from(resolution)) };
            slots.entry(slot).or_insert_with(|| Aggregate::empty(with_samples, unit)).add_point(p);
        }
        self.points += 1;
    }

    /// Removes buckets that are past their retention; their points still
    /// count in the coarser buckets that are kept, and in `points`.
    pub fn drop_expired(&mut self, cutoffs: &crate::retention::Cutoffs) {
        for slots in self.series.values_mut() {
            slots.retain(|s, _| !cutoffs.expired(s.resolution, s.bucket_start));
        }
        self.series.retain(|_, slots| !slots.is_empty());
    }

    /// The tenants whose buckets this writes include one that dashboard-api
    /// may have cached a response from (see [`proto::aggregate::late_write`]):
    /// their cache generation must move on.
    pub fn late_tenants(&self, series: &[Series<'_>], now_s: i64) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .series
            .iter()
            .filter(|(_, slots)| slots.keys().any(|s| proto::aggregate::late_write(i64::from(s.resolution), s.bucket_start, now_s)))
            .filter_map(|(i, _)| series.get(*i as usize).map(|s| s.tenant.to_owned()))
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::Value;

    fn add(acc: &mut Accumulator, series: u32, points: &[(f64, u64)]) {
        for &(v, secs) in points {
            let p = Point {
                metric: "m".into(),
                unit: "ms".into(),
                time_unix_nano: secs * 1_000_000_000,
                value: Some(Value::Gauge(v)),
                ..Default::default()
            };
            acc.add_point(series, Kind::Gauge, "ms", &p);
        }
    }

    #[test]
    fn late_tenants_are_those_writing_buckets_that_ended_five_minutes_ago() {
        let now = 1_700_006_400 + 7200; // 02:00 on a day
        let series = [Series::new("t", "m", vec![], Kind::Gauge, "ms"), Series::new("u", "m", vec![], Kind::Gauge, "ms")];
        let mut acc = Accumulator::default();
        // On time: the minute before now, in the open hour and day.
        add(&mut acc, 0, &[(1.0, now - 30)]);
        assert!(acc.late_tenants(&series, now as i64).is_empty());
        // Four minutes old: its minute ended less than five minutes ago.
        add(&mut acc, 0, &[(1.0, now - 240)]);
        assert!(acc.late_tenants(&series, now as i64).is_empty());
        // Six minutes old: a dashboard may have cached its minute.
        add(&mut acc, 1, &[(1.0, now - 360)]);
        assert_eq!(acc.late_tenants(&series, now as i64), ["u"]);
    }

    #[test]
    fn every_point_updates_one_bucket_per_resolution() {
        let mut acc = Accumulator::default();
        // 10:00:30, 10:01:10 and 11:00:00 on one day.
        let day = 1_700_006_400; // a multiple of 86400
        add(&mut acc, 0, &[(1.0, day + 36_030), (2.0, day + 36_070), (3.0, day + 39_600)]);
        assert_eq!(acc.points, 3);
        let slots = &acc.series[&0];
        let counts: Vec<(u32, i64, u64)> = slots.iter().map(|(s, a)| (s.resolution, s.bucket_start - day as i64, a.count)).collect();
        assert_eq!(counts, [(60, 36_000, 1), (60, 36_060, 1), (60, 39_600, 1), (3600, 36_000, 2), (3600, 39_600, 1), (86_400, 0, 3)]);
    }

    #[test]
    fn expired_buckets_are_dropped_and_their_points_stay_in_coarser_ones() {
        let day = 1_700_006_400u64;
        let now_ms = (day + 3 * 86_400) * 1000;
        let mut acc = Accumulator::default();
        // Three days old (past the 2-day minute retention) and one minute old.
        add(&mut acc, 0, &[(1.0, day + 60), (2.0, day + 3 * 86_400 - 60)]);
        acc.drop_expired(&crate::retention::Retention::default().cutoffs(now_ms));
        let slots = &acc.series[&0];
        let kept: Vec<(u32, u64)> = slots.iter().map(|(s, a)| (s.resolution, a.count)).collect();
        assert_eq!(kept, [(60, 1), (3600, 1), (3600, 1), (86_400, 1), (86_400, 1)]);
        assert_eq!(acc.points, 2);

        let mut old = Accumulator::default();
        add(&mut old, 0, &[(1.0, day)]);
        let short =
            crate::retention::Retention { kept: proto::retention::Kept { minute_days: 1, hour_days: 1, day_days: 1 }, dedup_days: 1 };
        old.drop_expired(&short.cutoffs(now_ms));
        assert!(old.series.is_empty(), "a series with no bucket left is dropped");
    }
}
