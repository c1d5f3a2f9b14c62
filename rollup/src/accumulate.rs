//! Points → aggregates per series, resolution and bucket: the rollup's
//! functional core.

use proto::aggregate::Aggregate;
use proto::point::{labels_json, Batch, Kind, Point};
use std::collections::BTreeMap;

/// Bucket widths in seconds: 1 minute, 1 hour, 1 day. Every point updates
/// one bucket of each, so coarser buckets are exact merges of finer ones.
pub const RESOLUTIONS: [u32; 3] = [60, 3600, 86_400];

/// A series' identity and catalog attributes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub tenant: String,
    pub metric: String,
    /// Canonical JSON (see [`proto::point::labels_json`]).
    pub labels: String,
    pub kind: Kind,
    pub unit: String,
}

/// Where an aggregate row lives, given its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub resolution: u32,
    /// Unix seconds, a multiple of `resolution`.
    pub bucket_start: i64,
}

/// Aggregates built from archives, not yet merged with what D1 holds.
#[derive(Debug, Default)]
pub struct Accumulator {
    pub series: BTreeMap<SeriesKey, BTreeMap<Slot, Aggregate>>,
    pub points: u64,
}

impl SeriesKey {
    /// A stable hash of the series' identity (tenant, metric, labels), which
    /// keys its cumulative state.
    pub fn hash(&self) -> String {
        proto::hash::hex128(&[self.tenant.as_bytes(), self.metric.as_bytes(), self.labels.as_bytes()])
    }

    /// The series of a point that carries all its labels.
    pub fn of(tenant: &str, p: &Point) -> SeriesKey {
        SeriesKey::with_labels(tenant, p, &p.labels)
    }

    /// The series of a point of `batch`, whose shared labels it also has.
    pub fn in_batch(batch: &Batch, p: &Point) -> SeriesKey {
        if batch.shared_labels.is_empty() {
            return SeriesKey::of(&batch.tenant, p);
        }
        SeriesKey::with_labels(&batch.tenant, p, &batch.labels_of(p))
    }

    fn with_labels(tenant: &str, p: &Point, labels: &[proto::point::Label]) -> SeriesKey {
        SeriesKey {
            tenant: tenant.to_owned(),
            metric: p.metric.clone(),
            labels: labels_json(labels),
            kind: p.kind(),
            unit: p.unit.clone(),
        }
    }
}

impl Accumulator {
    pub fn add_batch(&mut self, batch: &Batch) {
        for p in &batch.points {
            self.add_point(SeriesKey::in_batch(batch, p), p);
        }
    }

    /// Adds a (delta) point to one bucket of each resolution.
    pub fn add_point(&mut self, key: SeriesKey, p: &Point) {
        let unit = key.unit.clone();
        let with_samples = key.kind != Kind::Counter;
        let slots = self.series.entry(key).or_default();
        let seconds = (p.time_unix_nano / 1_000_000_000) as i64;
        for resolution in RESOLUTIONS {
            let slot = Slot { resolution, bucket_start: seconds - seconds.rem_euclid(i64::from(resolution)) };
            slots.entry(slot).or_insert_with(|| Aggregate::empty(with_samples, &unit)).add_point(p);
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
    pub fn late_tenants(&self, now_s: i64) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .series
            .iter()
            .filter(|(_, slots)| slots.keys().any(|s| proto::aggregate::late_write(i64::from(s.resolution), s.bucket_start, now_s)))
            .map(|(k, _)| k.tenant.clone())
            .collect();
        tenants.dedup();
        tenants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Label, Point, Value};

    fn batch(points: Vec<(f64, u64)>) -> Batch {
        Batch {
            tenant: "t".into(),
            batch_id: "b".into(),
            points: points
                .into_iter()
                .map(|(v, secs)| Point {
                    metric: "m".into(),
                    labels: vec![Label { key: "k".into(), value: "v".into() }],
                    unit: "ms".into(),
                    time_unix_nano: secs * 1_000_000_000,
                    value: Some(Value::Gauge(v)),
                    label_refs: Vec::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn late_tenants_are_those_writing_buckets_that_ended_five_minutes_ago() {
        let now = 1_700_006_400 + 7200; // 02:00 on a day
        let mut acc = Accumulator::default();
        // On time: the minute before now, in the open hour and day.
        acc.add_batch(&batch(vec![(1.0, now - 30)]));
        assert!(acc.late_tenants(now as i64).is_empty());
        // Four minutes old: its minute ended less than five minutes ago.
        acc.add_batch(&batch(vec![(1.0, now - 240)]));
        assert!(acc.late_tenants(now as i64).is_empty());
        // Six minutes old: a dashboard may have cached its minute.
        acc.add_batch(&Batch { tenant: "u".into(), ..batch(vec![(1.0, now - 360)]) });
        assert_eq!(acc.late_tenants(now as i64), ["u"]);
    }

    #[test]
    fn every_point_updates_one_bucket_per_resolution() {
        let mut acc = Accumulator::default();
        // 10:00:30, 10:01:10 and 11:00:00 on one day.
        let day = 1_700_006_400; // a multiple of 86400
        acc.add_batch(&batch(vec![(1.0, day + 36_030), (2.0, day + 36_070), (3.0, day + 39_600)]));
        assert_eq!(acc.points, 3);
        let (key, slots) = acc.series.iter().next().unwrap();
        assert_eq!(key.labels, r#"{"k":"v"}"#);
        let counts: Vec<(u32, i64, u64)> = slots.iter().map(|(s, a)| (s.resolution, s.bucket_start - day as i64, a.count)).collect();
        assert_eq!(
            counts,
            [(60, 36_000, 1), (60, 36_060, 1), (60, 39_600, 1), (3600, 36_000, 2), (3600, 39_600, 1), (86_400, 0, 3)]
        );
    }

    #[test]
    fn expired_buckets_are_dropped_and_their_points_stay_in_coarser_ones() {
        let day = 1_700_006_400u64;
        let now_ms = (day + 3 * 86_400) * 1000;
        let mut acc = Accumulator::default();
        // Three days old (past the 2-day minute retention) and one minute old.
        acc.add_batch(&batch(vec![(1.0, day + 60), (2.0, day + 3 * 86_400 - 60)]));
        acc.drop_expired(&crate::retention::Retention::default().cutoffs(now_ms));
        let slots = acc.series.values().next().unwrap();
        let kept: Vec<(u32, u64)> = slots.iter().map(|(s, a)| (s.resolution, a.count)).collect();
        assert_eq!(kept, [(60, 1), (3600, 1), (3600, 1), (86_400, 1), (86_400, 1)]);
        assert_eq!(acc.points, 2);

        let mut old = Accumulator::default();
        old.add_batch(&batch(vec![(1.0, day)]));
        let short = crate::retention::Retention { minute_days: 1, hour_days: 1, day_days: 1, dedup_days: 1 };
        old.drop_expired(&short.cutoffs(now_ms));
        assert!(old.series.is_empty(), "a series with no bucket left is dropped");
    }
}
