//! The mergeable aggregate the rollup stores per (series, resolution, bucket)
//! and dashboard-api reads: count, sum, min, max, the last value, and for
//! gauges and distributions an HdrHistogram of the samples.
//!
//! # Values in the histogram
//!
//! HdrHistogram counts integers, so each sample `v` is recorded as
//! `round(|v| × scale)` where the scale depends on the unit
//! ([`scale_for_unit`]): time units become nanoseconds, everything else keeps
//! six decimal places of its unit. Negative samples go to a mirrored histogram
//! of magnitudes; zero is an ordinary value. With 3 significant figures a
//! recorded integer is exact below 2048 and within 1/1024 (0.098 %) above, so
//! any sample whose scaled magnitude is at least 500 (0.0005 ms, 0.0005 of a
//! unitless value, 0.5 µs for seconds) is reproduced within 0.1 %. Scaled
//! magnitudes saturate at 2^62 (4.6e12 of a unitless value; 146 years in ns).
//!
//! # Quantiles
//!
//! The quantile φ of n samples is the ⌈φ·n⌉-th smallest (the first for φ = 0).
//! The smallest and largest samples are the exact `min` and `max`; any other
//! lies in a histogram bucket `[lo, hi]`, and the answer is the number with the
//! fewest significant digits in that bucket, so that integer data reads back
//! as integers (p99 of 1..=100 is 99, not 99.007) while the error stays within
//! the bucket's width.

pub mod block;
pub mod head;
mod row;
mod sparse;

pub use row::{blob, Row};

use crate::point::{Point, Value};
use crate::sum::Sum;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use sparse::Sparse;

/// dashboard-api caches the responses of queries whose buckets all ended at
/// least this long ago: by then, on-time data has been rolled up.
pub const CLOSED_AFTER_S: i64 = 600;

/// Whether a bucket written at `now_s` holds late data that may change a
/// response dashboard-api has cached: the bucket ended more than half of
/// [`CLOSED_AFTER_S`] ago. The other half is a margin for the time between
/// the rollup reading the clock and committing, and for clock differences
/// between Workers. The rollup then moves the tenant's cache generation on.
pub fn late_write(resolution: i64, bucket_start: i64, now_s: i64) -> bool {
    bucket_start + resolution <= now_s - CLOSED_AFTER_S / 2
}

/// Significant figures the histograms keep.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// The largest scaled magnitude recorded; larger ones saturate here.
const MAX_SCALED: u64 = 1 << 62;

/// The blob format version of [`Samples::encode`].
const SAMPLES_FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// A stored histogram could not be read back.
    #[error("stored histogram is corrupt: {0}")]
    Corrupt(String),
    /// A minute given to an hour block is not a minute of that hour, or
    /// comes out of order.
    #[error("bucket {bucket_start} is not the next minute of the hour block starting at {hour_start}")]
    OutsideBlock { hour_start: i64, bucket_start: i64 },
}

/// Nanoseconds in one of a UCUM time unit, `None` for other units.
pub fn time_unit_ns(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "min" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        _ => return None,
    })
}

/// The integer scale for a UCUM unit: how many histogram units one unit of
/// the sample is.
pub fn scale_for_unit(unit: &str) -> f64 {
    time_unit_ns(unit).unwrap_or(1e6)
}

/// Count, sum, extremes, last value and samples of one series over one bucket.
#[derive(Clone, Debug)]
pub struct Aggregate {
    /// Gauge samples, counter increments, or distribution samples;
    /// saturates at `u64::MAX`.
    pub count: u64,
    /// Compensated and saturating ([`crate::sum`]): finite whatever is added.
    pub sum: Sum,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The value with the greatest timestamp (for a counter, its last increase).
    pub last: f64,
    pub last_time_unix_nano: u64,
    /// Present for gauges and distributions.
    pub samples: Option<Samples>,
}

impl Aggregate {
    /// An empty aggregate for a series with this unit.
    pub fn empty(with_samples: bool, unit: &str) -> Aggregate {
        Aggregate {
            count: 0,
            sum: Sum::default(),
            min: None,
            max: None,
            last: 0.0,
            last_time_unix_nano: 0,
            samples: with_samples.then(|| Samples::new(scale_for_unit(unit))),
        }
    }

    /// Bytes it takes, its own size and its samples' heap: what a run
    /// holding many weighs (`rollup::pending`).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Aggregate>() + self.samples.as_ref().map_or(0, Samples::heap_bytes)
    }

    /// Adds one point. Counter points add their increase to `sum`.
    pub fn add_point(&mut self, p: &Point) {
        match &p.value {
            None => {}
            Some(Value::Gauge(v)) => {
                self.observe(*v, 1);
                self.set_last(*v, p.time_unix_nano);
                if let Some(s) = &mut self.samples {
                    s.record(*v, 1);
                }
            }
            Some(Value::Counter(c)) => {
                self.observe(c.value, 1);
                self.set_last(c.value, p.time_unix_nano);
            }
            Some(Value::Distribution(d)) => {
                self.count = self.count.saturating_add(d.count);
                self.sum.add(d.sum);
                let lo = d.min.into_iter().chain(d.values.iter().copied()).reduce(f64::min);
                let hi = d.max.into_iter().chain(d.values.iter().copied()).reduce(f64::max);
                self.min = min_opt(self.min, lo);
                self.max = max_opt(self.max, hi);
                if d.count > 0 {
                    self.set_last(d.sum / d.count as f64, p.time_unix_nano);
                }
                if let Some(s) = &mut self.samples {
                    for (&v, &n) in d.values.iter().zip(&d.counts) {
                        s.record(v, n);
                    }
                }
            }
        }
    }

    fn observe(&mut self, v: f64, n: u64) {
        self.count = self.count.saturating_add(n);
        self.sum.add(v * n as f64);
        self.min = min_opt(self.min, Some(v));
        self.max = max_opt(self.max, Some(v));
    }

    /// Keeps the value with the greatest time; of values with the same
    /// time, the greatest, so that merge order cannot change the result.
    fn set_last(&mut self, v: f64, t: u64) {
        let unset = self.last_time_unix_nano == 0;
        if t > self.last_time_unix_nano || (t == self.last_time_unix_nano && (unset || v > self.last)) {
            self.last = v;
            self.last_time_unix_nano = t;
        }
    }

    /// Merges another aggregate of the same series into this one. Merging in
    /// any order or grouping gives the same counts, extremes, last value and
    /// histograms; `sum` is a compensated float sum, equal up to rounding.
    pub fn merge(&mut self, other: &Aggregate) {
        self.count = self.count.saturating_add(other.count);
        self.sum.add_sum(&other.sum);
        self.min = min_opt(self.min, other.min);
        self.max = max_opt(self.max, other.max);
        if other.count > 0 {
            self.set_last(other.last, other.last_time_unix_nano);
        }
        match (&mut self.samples, &other.samples) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.samples = Some(b.clone()),
            _ => {}
        }
    }

    /// The φ-quantile of the samples, `None` without samples.
    pub fn quantile(&self, phi: f64) -> Option<f64> {
        self.samples.as_ref()?.quantile(phi, self.min, self.max)
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Samples as two HdrHistograms of scaled magnitudes: one for values ≥ 0 and
/// a mirrored one for negative values, held sparsely in memory
/// ([`sparse`]) and densely only while encoding or decoding.
#[derive(Clone, Debug)]
pub struct Samples {
    scale: f64,
    positive: Sparse,
    negative: Sparse,
}

impl PartialEq for Samples {
    fn eq(&self, other: &Samples) -> bool {
        self.scale == other.scale && self.positive == other.positive && self.negative == other.negative
    }
}

fn new_histogram() -> Histogram<u64> {
    // 3 significant figures is within the range `new` accepts (0..=5).
    Histogram::new(SIGNIFICANT_FIGURES).unwrap_or_else(|_| unreachable!())
}

impl Samples {
    pub fn new(scale: f64) -> Samples {
        Samples { scale, positive: Sparse::default(), negative: Sparse::default() }
    }

    /// Number of samples recorded.
    pub fn len(&self) -> u64 {
        self.positive.len() + self.negative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of heap it takes beyond its own size.
    pub fn heap_bytes(&self) -> usize {
        self.positive.heap_bytes() + self.negative.heap_bytes()
    }

    /// Records `n` samples of value `v`.
    pub fn record(&mut self, v: f64, n: u64) {
        if n == 0 || !v.is_finite() {
            return;
        }
        let scaled = (v.abs() * self.scale).round();
        let scaled = if scaled >= MAX_SCALED as f64 { MAX_SCALED } else { scaled as u64 };
        let h = if v < 0.0 { &mut self.negative } else { &mut self.positive };
        h.record(scaled, n);
    }

    /// Adds another set of samples. Differently scaled samples (a series whose
    /// unit changed) are re-recorded at this scale.
    pub fn merge(&mut self, other: &Samples) {
        if other.scale == self.scale {
            self.positive.add(&other.positive);
            self.negative.add(&other.negative);
            return;
        }
        for (h, sign) in [(&other.positive, 1.0), (&other.negative, -1.0)] {
            for (bucket, count) in h.iter() {
                let v = sign * sparse::median_equivalent(bucket) as f64 / other.scale;
                self.record(v, count);
            }
        }
    }

    /// The φ-quantile (see the module docs); `min`/`max` are the exact
    /// extremes when known.
    pub fn quantile(&self, phi: f64, min: Option<f64>, max: Option<f64>) -> Option<f64> {
        let n = self.len();
        if n == 0 || phi.is_nan() {
            return None;
        }
        let rank = ((phi.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        if rank == 1 {
            if let Some(m) = min {
                return Some(m);
            }
        }
        if rank == n {
            if let Some(m) = max {
                return Some(m);
            }
        }
        let neg = self.negative.len();
        let (h, k, sign) = if rank <= neg {
            // The rank-th smallest negative value is the (neg - rank + 1)-th
            // largest magnitude, i.e. the (neg - rank + 1)-th smallest of the
            // mirrored histogram counted from the top.
            (&self.negative, neg - rank + 1, -1.0)
        } else {
            (&self.positive, rank - neg, 1.0)
        };
        let scaled = h.nth_smallest(k)?;
        let lo = sparse::lowest_equivalent(scaled) as f64 / self.scale;
        let hi = sparse::highest_equivalent(scaled) as f64 / self.scale;
        let v = sign * shortest_in(lo, hi);
        Some(match (min, max) {
            (Some(a), Some(b)) => v.clamp(a, b),
            _ => v,
        })
    }

    /// Serializes as `[format][scale f64 LE][positive length u32 LE][positive][negative]`,
    /// each histogram in HdrHistogram's V2 + DEFLATE encoding (empty when it has
    /// no samples).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SAMPLES_FORMAT];
        out.extend_from_slice(&self.scale.to_le_bytes());
        let pos = serialize(&self.positive.to_histogram());
        out.extend_from_slice(&(pos.len() as u32).to_le_bytes());
        out.extend_from_slice(&pos);
        out.extend_from_slice(&serialize(&self.negative.to_histogram()));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Samples, AggregateError> {
        let corrupt = |m: &str| AggregateError::Corrupt(m.to_owned());
        let (&format, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        if format != SAMPLES_FORMAT {
            return Err(corrupt(&format!("unknown format {format}")));
        }
        let (scale, rest) = rest.split_first_chunk::<8>().ok_or_else(|| corrupt("truncated scale"))?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt("truncated length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupt("truncated histogram"));
        }
        let (pos, neg) = rest.split_at(len);
        let scale = f64::from_le_bytes(*scale);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(corrupt("invalid scale"));
        }
        Ok(Samples { scale, positive: sparse_of(pos)?, negative: sparse_of(neg)? })
    }
}

fn serialize(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    // Serializing into a Vec only fails for histograms larger than the format
    // allows, which auto-resizing up to MAX_SCALED cannot produce.
    let _ = V2DeflateSerializer::new().serialize(h, &mut out);
    out
}

/// Decodes one stored histogram, directly if it has this module's
/// configuration, through the crate otherwise.
fn sparse_of(bytes: &[u8]) -> Result<Sparse, AggregateError> {
    if bytes.is_empty() {
        return Ok(Sparse::default());
    }
    match Sparse::from_v2_deflate(bytes) {
        Some(s) => Ok(s),
        None => Ok(Sparse::from_histogram(&deserialize(bytes)?)),
    }
}

fn deserialize(bytes: &[u8]) -> Result<Histogram<u64>, AggregateError> {
    if bytes.is_empty() {
        return Ok(new_histogram());
    }
    let mut h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| AggregateError::Corrupt(format!("{e:?}")))?;
    h.auto(true);
    Ok(h)
}

/// The number with the fewest significant digits in `[lo, hi]` (0 ≤ lo ≤ hi),
/// preferring the one nearest the middle.
fn shortest_in(lo: f64, hi: f64) -> f64 {
    let mid = (lo + hi) / 2.0;
    if lo <= 0.0 {
        return 0.0;
    }
    for digits in 1..=17 {
        let r = round_significant(mid, digits);
        if lo <= r && r <= hi {
            return r;
        }
    }
    mid
}

fn round_significant(v: f64, digits: i32) -> f64 {
    let exp = v.abs().log10().floor() as i32;
    let shift = digits - 1 - exp;
    // Multiplying by a power of ten above 1 and dividing by one below keeps the
    // decimal rounding exact for the common cases (0.1 is not representable).
    if shift >= 0 {
        let f = 10f64.powi(shift);
        (v * f).round() / f
    } else {
        let f = 10f64.powi(-shift);
        (v / f).round() * f
    }
}

#[cfg(test)]
mod tests;
