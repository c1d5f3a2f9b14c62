//! A chunk's keyed points → the aggregates and cumulative states to merge
//! into D1. Pure: the D1 reads it needs are done before, the writes after.

use crate::accumulate::Accumulator;
use crate::conform::conform;
use crate::cumulative::{self, Step};
use crate::series::Keyed;
use proto::point::{Kind, Point};
use std::collections::{BTreeMap, HashMap};

/// A cumulative state a series starts from, and the guard version D1 holds
/// it at (`None`: D1 has none yet, the state is the run's own).
#[derive(Clone, Debug)]
pub struct StoredState {
    pub point: Point,
    pub version: Option<i64>,
}

/// A cumulative state to write: inserted if `version` is `None`, else
/// updated from that version.
#[derive(Clone, Debug, PartialEq)]
pub struct StateWrite {
    /// [`Series::hash_hex`](crate::series::Series::hash_hex) of the series
    /// the state belongs to.
    pub series_hash: String,
    pub point: Point,
    pub version: Option<i64>,
}

/// Where a series' points are aggregated: into `series` (itself, or its
/// metric's overflow series), whose catalog kind and unit they take.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub series: u32,
    pub kind: Kind,
    pub unit: String,
}

impl Target {
    /// Every series of `keyed` into itself, in its own kind and unit: the
    /// targets when the catalog has just created every series (and for
    /// benchmarks and tests).
    pub fn own(keyed: &Keyed<'_>) -> Vec<Target> {
        keyed.series.iter().enumerate().map(|(i, s)| Target { series: i as u32, kind: s.kind, unit: s.unit.to_owned() }).collect()
    }
}

/// Points not aggregated, and why (the first few distinct reasons).
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct SetAside {
    pub points: u64,
    pub reasons: Vec<String>,
}

/// Distinct reasons a report lists at most.
const MAX_REASONS: usize = 5;

impl SetAside {
    pub fn add(&mut self, reason: String) {
        self.points += 1;
        self.note(reason);
    }

    pub fn extend(&mut self, other: SetAside) {
        self.points += other.points;
        other.reasons.into_iter().for_each(|r| self.note(r));
    }

    fn note(&mut self, reason: String) {
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// What a chunk adds.
#[derive(Debug, Default)]
pub struct Prepared {
    pub acc: Accumulator,
    pub states: Vec<StateWrite>,
    pub set_aside: SetAside,
}

/// Hashes of the series that have cumulative points, whose states must be
/// read first.
pub fn cumulative_hashes(keyed: &Keyed<'_>) -> Vec<String> {
    let mut out: Vec<String> =
        keyed.points.iter().filter(|(_, p)| cumulative::is_cumulative(p)).map(|(i, _)| keyed.series[*i as usize].hash_hex()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Accumulates the chunk's points into their [`Target`]s (`targets[i]` for
/// series `i`), turning cumulative ones into deltas against (and updating)
/// each series' own stored state, so that a series folded into the overflow
/// series keeps its own running total. `acc.points` counts every point of
/// the chunk, including cumulative ones that add nothing new and those set
/// aside.
pub fn prepare(keyed: &Keyed<'_>, targets: &[Target], states: &HashMap<String, StoredState>) -> Prepared {
    let mut out = Prepared::default();
    for reason in &keyed.unreadable {
        out.set_aside.add(reason.clone());
    }
    let add = |out: &mut Prepared, series: u32, p: &Point| {
        let Some(t) = targets.get(series as usize) else {
            out.set_aside.add(format!("metric {}: no series", p.metric));
            return;
        };
        match conform(p, t.kind, &t.unit) {
            Ok(p) => out.acc.add_point(t.series, t.kind, &t.unit, &p),
            Err(reason) => {
                let tenant = keyed.series.get(series as usize).map_or("", |s| s.tenant);
                out.set_aside.add(format!("tenant {tenant}: {reason}"));
            }
        }
    };
    let mut cumulative_points: BTreeMap<u32, Vec<&Point>> = BTreeMap::new();
    for &(series, p) in &keyed.points {
        if cumulative::is_cumulative(p) {
            cumulative_points.entry(series).or_default().push(p);
        } else {
            add(&mut out, series, p);
        }
    }
    for (series, mut points) in cumulative_points {
        points.sort_by_key(|p| p.time_unix_nano);
        let hash = keyed.series[series as usize].hash_hex();
        let stored = states.get(&hash);
        let mut prev: Option<&Point> = stored.map(|s| &s.point);
        for p in points {
            if let Step::Delta(delta) = cumulative::to_delta(prev, p) {
                add(&mut out, series, &delta);
                prev = Some(p);
            }
        }
        if let Some(last) = prev {
            if stored.is_none_or(|s| s.point != *last) {
                out.states.push(StateWrite { series_hash: hash, point: last.clone(), version: stored.and_then(|s| s.version) });
            }
        }
    }
    out.acc.points = (keyed.points.len() + keyed.unreadable.len()) as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{key, Series};
    use proto::point::{Batch, Counter, Label, Value};

    fn counter(t: u64, v: f64) -> Point {
        Point {
            metric: "c".into(),
            time_unix_nano: t * 1_000_000_000,
            value: Some(Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: 1 })),
            ..Default::default()
        }
    }

    fn batches(points: Vec<Point>) -> Vec<Batch> {
        vec![Batch { tenant: "t".into(), batch_id: "b".into(), points, ..Default::default() }]
    }

    fn own(keyed: &Keyed<'_>) -> Vec<Target> {
        Target::own(keyed)
    }

    fn hash() -> String {
        Series::new("t", "c", vec![], Kind::Counter, "").hash_hex()
    }

    fn minute_sums(acc: &Accumulator) -> Vec<(i64, f64)> {
        acc.series
            .values()
            .flat_map(|slots| slots.iter().filter(|(s, _)| s.resolution == 60).map(|(s, a)| (s.bucket_start, a.sum.value())))
            .collect()
    }

    #[test]
    fn cumulative_points_in_any_order_become_per_minute_increases() {
        let b = batches(vec![counter(180, 12.0), counter(60, 5.0), counter(120, 9.0)]);
        let k = key(&b);
        assert_eq!(cumulative_hashes(&k), [hash()]);
        let out = prepare(&k, &own(&k), &HashMap::new());
        assert_eq!(minute_sums(&out.acc), [(60, 5.0), (120, 4.0), (180, 3.0)]);
        assert_eq!(out.acc.points, 3);
        assert_eq!(out.states, [StateWrite { series_hash: hash(), point: counter(180, 12.0), version: None }]);
    }

    #[test]
    fn stored_state_is_the_baseline_and_old_points_add_nothing() {
        let states = HashMap::from([(hash(), StoredState { point: counter(120, 9.0), version: Some(7) })]);
        let b = batches(vec![counter(60, 5.0), counter(180, 10.0)]);
        let k = key(&b);
        let out = prepare(&k, &own(&k), &states);
        assert_eq!(minute_sums(&out.acc), [(180, 1.0)]);
        assert_eq!(out.states[0].version, Some(7));
        // Nothing newer than the state: no write at all.
        let b = batches(vec![counter(60, 5.0)]);
        let k = key(&b);
        let out = prepare(&k, &own(&k), &states);
        assert!(out.acc.series.is_empty() && out.states.is_empty());
        assert_eq!(out.acc.points, 1);
    }

    #[test]
    fn folded_series_add_to_the_overflow_series_with_their_own_deltas() {
        let mut a = counter(60, 5.0);
        a.labels = vec![Label { key: "i".into(), value: "1".into() }];
        let mut b = counter(60, 7.0);
        b.labels = vec![Label { key: "i".into(), value: "2".into() }];
        let mut b2 = b.clone();
        b2.time_unix_nano = 120_000_000_000;
        b2.value = Some(Value::Counter(Counter { value: 10.0, monotonic: true, cumulative: true, start_time_unix_nano: 1 }));
        let batches = batches(vec![a, b, b2]);
        let mut k = key(&batches);
        let overflow = k.series[0].overflow();
        k.series.push(overflow);
        let to_overflow = Target { series: 2, kind: Kind::Counter, unit: String::new() };
        let targets = vec![to_overflow.clone(), to_overflow.clone(), to_overflow];
        let out = prepare(&k, &targets, &HashMap::new());
        // One series in the aggregates: the overflow, holding 5 + 7 then 3.
        assert_eq!(out.acc.series.keys().collect::<Vec<_>>(), [&2]);
        assert_eq!(minute_sums(&out.acc), [(60, 12.0), (120, 3.0)]);
        // But each folded series keeps its own running total.
        let mut hashes: Vec<String> = out.states.iter().map(|w| w.series_hash.clone()).collect();
        hashes.sort();
        let mut want = vec![k.series[0].hash_hex(), k.series[1].hash_hex()];
        want.sort();
        assert_eq!(hashes, want);
    }

    #[test]
    fn points_of_another_kind_or_unit_are_converted_or_set_aside() {
        let gauge = |v: f64, unit: &str| Point {
            metric: "m".into(),
            unit: unit.into(),
            time_unix_nano: 60_000_000_000,
            value: Some(Value::Gauge(v)),
            ..Default::default()
        };
        let mut c = gauge(0.0, "ms");
        c.value = Some(Value::Counter(Counter { value: 1.0, ..Default::default() }));
        // One series: a gauge in ms, then 2 s of it, then a counter point.
        let b = batches(vec![gauge(5.0, "ms"), gauge(2.0, "s"), c, gauge(1.0, "By"), gauge(f64::NAN, "ms")]);
        let k = key(&b);
        assert_eq!(k.series.len(), 1);
        let out = prepare(&k, &own(&k), &HashMap::new());
        assert_eq!(minute_sums(&out.acc), [(60, 2005.0)]);
        assert_eq!(out.set_aside.points, 3);
        assert_eq!(out.acc.points, 5, "every point is counted as read");
        assert_eq!(
            out.set_aside.reasons,
            [
                "tenant t: metric m: a counter point for a gauge series",
                r#"tenant t: metric m: a point in "By" for a series in "ms""#,
                "tenant t: metric m: a non-finite value"
            ]
        );
    }
}
