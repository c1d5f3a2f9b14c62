//! Which series each point of a chunk belongs to.
//!
//! A series is one identity everywhere: (tenant, metric, labels), as the
//! catalog's `UNIQUE (tenant, metric, labels)` and the cumulative state's
//! hash have it. Kind and unit are attributes of the series, not part of
//! its identity (they were, and two points of one series with different
//! units made two keys for one catalog row, which failed the archive's
//! transaction on every run); [`crate::conform`] maps or sets aside a point
//! whose kind or unit is not its series'.
//!
//! Work is per series, not per point: points of one batch with the same
//! metric and label references share one lookup, and a series' labels are
//! borrowed from the batches (its JSON is built only to hash it, and again
//! in bounded groups for the catalog's statements). Before, every point's
//! labels were copied out of its batch and serialized, about 74 KB a point
//! for 64 labels at the length limits.

use proto::point::{pairs_json, Batch, Kind, Label, Point};
use std::collections::HashMap;

/// The label of overflow series (see [`crate::guard`]).
pub const OVERFLOW_LABEL: &str = "otel.metric.overflow";

/// One series of a chunk, borrowing from its batches.
#[derive(Clone, Debug, PartialEq)]
pub struct Series<'a> {
    pub tenant: &'a str,
    pub metric: &'a str,
    /// Sorted by key, keys unique.
    pub labels: Vec<(&'a str, &'a str)>,
    /// [`hash`] of the identity.
    pub hash: u128,
    /// Of the first point of the series in the chunk; the catalog's, once
    /// it has been read, win.
    pub kind: Kind,
    pub unit: &'a str,
}

/// The identity hash of a series: of tenant, metric and the labels'
/// canonical JSON. Keys the cumulative state (as 32 hex digits, see
/// [`Series::hash_hex`]), so it must never change.
pub fn hash(tenant: &str, metric: &str, labels_json: &str) -> u128 {
    proto::hash::hash128(&[tenant.as_bytes(), metric.as_bytes(), labels_json.as_bytes()])
}

impl<'a> Series<'a> {
    pub fn new(tenant: &'a str, metric: &'a str, labels: Vec<(&'a str, &'a str)>, kind: Kind, unit: &'a str) -> Series<'a> {
        let hash = hash(tenant, metric, &pairs_json(&labels));
        Series { tenant, metric, labels, hash, kind, unit }
    }

    /// The labels' canonical JSON, as the catalog stores them.
    pub fn json(&self) -> String {
        pairs_json(&self.labels)
    }

    /// The hash as the cumulative state's key.
    pub fn hash_hex(&self) -> String {
        format!("{:032x}", self.hash)
    }

    /// Whether this is its metric's overflow series.
    pub fn is_overflow(&self) -> bool {
        self.labels.iter().any(|&(k, v)| k == OVERFLOW_LABEL && v == "true")
    }

    /// The overflow series of this series' metric, of its kind and unit.
    pub fn overflow(&self) -> Series<'a> {
        Series::new(self.tenant, self.metric, vec![(OVERFLOW_LABEL, "true")], self.kind, self.unit)
    }

    /// Bytes the catalog's statements bind for this series.
    pub fn bound_bytes(&self) -> usize {
        self.tenant.len() + self.metric.len() + self.labels.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>() + 2
    }
}

/// A chunk's points by series, and the points that have none.
#[derive(Debug, Default)]
pub struct Keyed<'a> {
    pub series: Vec<Series<'a>>,
    /// Every point with a series, as an index into `series`, in chunk order.
    pub points: Vec<(u32, &'a Point)>,
    /// Points whose labels could not be read (a reference outside their
    /// batch's string table), with the reason.
    pub unreadable: Vec<String>,
}

/// Keys the points of `batches`.
pub fn key(batches: &[Batch]) -> Keyed<'_> {
    key_until(batches, usize::MAX).0
}

/// Keys the points of the leading batches of `batches`, stopping after the
/// batch with which their buckets (distinct series and minute, hour or day)
/// reach `max_buckets`; returns how many batches that took (at least one,
/// if there is one). A chunk's aggregates cost about a kilobyte each, so
/// this bounds what accumulating the keyed points will hold.
pub fn key_until(batches: &[Batch], max_buckets: usize) -> (Keyed<'_>, usize) {
    let mut out = Keyed::default();
    let mut by_hash: HashMap<u128, u32> = HashMap::new();
    let mut buckets: [std::collections::HashSet<(u32, i64)>; 3] = Default::default();
    for (taken, batch) in batches.iter().enumerate() {
        if buckets.iter().map(|b| b.len()).sum::<usize>() >= max_buckets {
            return (out, taken);
        }
        let first = out.points.len();
        // Points of one batch with the same metric and the same label
        // references (or labels) are the same series: looked up once.
        let mut local: HashMap<(&str, &[u32], &[Label]), u32> = HashMap::new();
        for p in &batch.points {
            let local_key = (p.metric.as_str(), p.label_refs.as_slice(), p.labels.as_slice());
            let idx = match local.get(&local_key) {
                Some(&idx) => idx,
                None => {
                    let labels = match batch.label_pairs(p) {
                        Ok(l) => l,
                        Err(e) => {
                            out.unreadable.push(format!("tenant {}: {e}", batch.tenant));
                            continue;
                        }
                    };
                    let s = Series::new(&batch.tenant, &p.metric, labels, p.kind(), &p.unit);
                    let idx = *by_hash.entry(s.hash).or_insert_with(|| {
                        out.series.push(s);
                        (out.series.len() - 1) as u32
                    });
                    local.insert(local_key, idx);
                    idx
                }
            };
            out.points.push((idx, p));
        }
        for &(idx, p) in &out.points[first..] {
            let seconds = (p.time_unix_nano / 1_000_000_000) as i64;
            for (set, width) in buckets.iter_mut().zip(proto::retention::RESOLUTIONS) {
                set.insert((idx, seconds.div_euclid(i64::from(width))));
            }
        }
    }
    (out, batches.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::Value;

    #[test]
    fn the_series_identity_is_pinned() {
        // cumulative_state keys D1 rows by this, across deploys.
        let s = Series::new("dev", "http.server.duration", vec![("http.route", "/a"), ("region", "eu")], Kind::Counter, "ms");
        assert_eq!(s.json(), r#"{"http.route":"/a","region":"eu"}"#);
        assert_eq!(s.hash_hex(), "adda77fbadd415c42790f7f3174a5040");
    }

    fn l(k: &str, v: &str) -> Label {
        Label { key: k.into(), value: v.into() }
    }

    fn gauge(labels: Vec<Label>, unit: &str) -> Point {
        Point { metric: "m".into(), labels, unit: unit.into(), value: Some(Value::Gauge(1.0)), ..Default::default() }
    }

    #[test]
    fn one_identity_whatever_the_kind_unit_or_batch_layout() {
        // The same series three ways: labels on the point, through the
        // string table, and split between shared and own labels; in ms and
        // in s; as a gauge and as a counter.
        let a = Batch { tenant: "t".into(), points: vec![gauge(vec![l("k", "v"), l("s", "x")], "ms")], ..Default::default() };
        let mut counter = gauge(Vec::new(), "s");
        counter.value = Some(Value::Counter(Default::default()));
        counter.label_refs = vec![0, 1];
        let b = Batch {
            tenant: "t".into(),
            shared_labels: vec![l("s", "x")],
            strings: vec!["k".into(), "v".into()],
            points: vec![counter, gauge(vec![l("k", "w")], "ms")],
            ..Default::default()
        };
        let batches = [a, b];
        let keyed = key(&batches);
        assert_eq!(keyed.series.len(), 2, "{:?}", keyed.series);
        assert_eq!(keyed.points.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 0, 1]);
        let s = &keyed.series[0];
        assert_eq!((s.kind, s.unit), (Kind::Gauge, "ms"), "the first point's");
        assert_eq!(s.json(), r#"{"k":"v","s":"x"}"#);
        // The cumulative state's key, pinned: it must not change.
        assert_eq!(s.hash_hex(), proto::hash::hex128(&[b"t", b"m", br#"{"k":"v","s":"x"}"#]));
        assert_eq!(format!("{:032x}", hash("t", "m", "{}")), "c8fbaa2790835a2f2101d842d988bd10");
    }

    #[test]
    fn points_of_one_series_in_a_batch_share_one_lookup() {
        let shared: Vec<Label> = (0..64).map(|i| l(&format!("{i:0128}"), &"v".repeat(1024))).collect();
        let points: Vec<Point> = (0..1000).map(|_| gauge(Vec::new(), "ms")).collect();
        let batches = [Batch { tenant: "t".into(), shared_labels: shared, points, ..Default::default() }];
        let keyed = key(&batches);
        assert_eq!((keyed.series.len(), keyed.points.len()), (1, 1000));
        assert_eq!(keyed.series[0].labels.len(), 64);
    }

    #[test]
    fn keying_stops_after_the_batch_that_reaches_the_bucket_budget() {
        let at = |minute: u64| Point {
            metric: "m".into(),
            time_unix_nano: minute * 60_000_000_000,
            value: Some(Value::Gauge(1.0)),
            ..Default::default()
        };
        // One series; each batch a new minute of the same hour and day.
        let batches: Vec<Batch> = (0..4).map(|m| Batch { tenant: "t".into(), points: vec![at(m), at(m)], ..Default::default() }).collect();
        // Buckets: 3 after the first batch, 4, 5, 6.
        let (keyed, taken) = key_until(&batches, 4);
        assert_eq!((taken, keyed.points.len()), (2, 4));
        assert_eq!(key_until(&batches, 1).1, 1, "at least one batch");
        assert_eq!(key_until(&batches, 100).1, 4);
        assert_eq!(key_until(&[], 1).1, 0);
    }

    #[test]
    fn unreadable_labels_set_the_point_aside() {
        let bad = Point { metric: "m".into(), label_refs: vec![0, 7], ..Default::default() };
        let batches =
            [Batch { tenant: "t".into(), strings: vec!["k".into()], points: vec![bad, gauge(Vec::new(), "")], ..Default::default() }];
        let keyed = key(&batches);
        assert_eq!((keyed.series.len(), keyed.points.len(), keyed.unreadable.len()), (1, 1, 1));
        assert!(keyed.unreadable[0].contains("outside"), "{:?}", keyed.unreadable);
    }

    #[test]
    fn overflow_series() {
        let s = Series::new("t", "m", vec![("i", "1")], Kind::Gauge, "ms");
        let o = s.overflow();
        assert!(o.is_overflow() && !s.is_overflow());
        assert_eq!(o.json(), r#"{"otel.metric.overflow":"true"}"#);
        assert_eq!((o.kind, o.unit), (Kind::Gauge, "ms"));
    }
}
