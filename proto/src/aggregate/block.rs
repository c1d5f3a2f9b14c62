//! One series' hour as one block: its minute aggregates in columns over a
//! shared bucket index, compressed together. This is the read-optimised
//! level issue #11 plans (one row per series and hour instead of one per
//! series and minute); the hour's merge is stored beside it as an ordinary
//! [`Row`](super::Row).
//!
//! # Format 1
//!
//! `[1][raw DEFLATE of the body]`. The body lists each column for the
//! minutes present, in ascending order:
//!
//! - the minutes present, a 60-bit mask (varint);
//! - `count` (varint);
//! - `sum` ([`put_f64`]: XOR with the column's previous value, so repeated
//!   and nearby values take fewer bytes);
//! - masks of the minutes with a `min` and with a `max`, then those values;
//! - `last`, then `last_time_ms` as a zig-zag varint from the minute's start;
//! - a mask of the minutes with samples; their scales; the number of
//!   buckets of each one's positive and negative histogram; then for all
//!   those histograms in turn the gaps between their buckets' indexes in
//!   HdrHistogram's counts array ([`sparse::index_of`]), and then all their
//!   counts less one (varints).
//!
//! Histogram indexes rather than values keep the gaps to a byte or two at
//! any magnitude; the columns group alike numbers for DEFLATE.
//!
//! Every stored number reads back bit-exact, and sums as the row format
//! keeps them (one double); `last_time` keeps milliseconds, as rows do.
//!
//! # Bounds
//!
//! A block's body is at most [`MAX_BODY_BYTES`] once inflated. Encoding a
//! larger one is an error, and decoding stops there, so a corrupt or
//! hostile blob costs at most that much work and about eight times that in
//! memory (each bucket takes at least two bytes of body and 16 in memory).

use super::sparse::{self, Sparse};
use super::{Aggregate, AggregateError, Samples};
use crate::sum::Sum;
use std::io::{Read, Write};

/// The block format version: the first byte.
const BLOCK_FORMAT: u8 = 1;

/// Minutes in a block, and seconds in each.
const MINUTES: i64 = 60;
const MINUTE_S: i64 = 60;

/// The most bytes a block's body takes before compression (4 MiB): far
/// above any real hour (a 60-sample-a-minute latency series takes ~10 KB).
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Encodes the minutes of the hour starting at `hour_start` (unix seconds,
/// a multiple of 3600), given as (minute start, aggregate) in ascending
/// order of start.
pub fn encode(hour_start: i64, minutes: &[(i64, &Aggregate)]) -> Result<Vec<u8>, AggregateError> {
    let body = encode_body(hour_start, minutes)?;
    let mut out = flate2::write::DeflateEncoder::new(vec![BLOCK_FORMAT], flate2::Compression::best());
    // Writing into a Vec cannot fail.
    out.write_all(&body).and_then(|_| out.finish()).map_err(|e| AggregateError::Corrupt(e.to_string()))
}

/// The body of a block before compression: what [`super::head`] entries
/// hold, many of them compressed together.
pub(super) fn encode_body(hour_start: i64, minutes: &[(i64, &Aggregate)]) -> Result<Vec<u8>, AggregateError> {
    let mut mask = 0u64;
    let mut last_index = -1;
    for &(start, _) in minutes {
        let index = minute_index(hour_start, start).ok_or(AggregateError::OutsideBlock { hour_start, bucket_start: start })?;
        if index <= last_index {
            return Err(AggregateError::OutsideBlock { hour_start, bucket_start: start });
        }
        last_index = index;
        mask |= 1 << index;
    }
    let mut body = Vec::new();
    put_varint(&mut body, mask);
    for (_, a) in minutes {
        put_varint(&mut body, a.count);
    }
    put_column(&mut body, minutes.iter().map(|(_, a)| Some(a.sum.value())), false);
    put_column(&mut body, minutes.iter().map(|(_, a)| a.min), true);
    put_column(&mut body, minutes.iter().map(|(_, a)| a.max), true);
    put_column(&mut body, minutes.iter().map(|(_, a)| Some(a.last)), false);
    for &(start, a) in minutes {
        let ms = (a.last_time_unix_nano / 1_000_000) as i64;
        put_varint(&mut body, zigzag(ms.wrapping_sub(start.saturating_mul(1000))));
    }
    put_mask(&mut body, minutes.iter().map(|(_, a)| a.samples.is_some()));
    let samples: Vec<&Samples> = minutes.iter().filter_map(|(_, a)| a.samples.as_ref()).collect();
    let histograms: Vec<&Sparse> = samples.iter().flat_map(|s| [&s.positive, &s.negative]).collect();
    let mut scale = 0.0;
    for s in &samples {
        put_f64(&mut body, s.scale, &mut scale);
    }
    for h in &histograms {
        put_varint(&mut body, h.bucket_count() as u64);
    }
    for h in &histograms {
        let mut next = 0;
        for (value, _) in h.iter() {
            let index = sparse::index_of(value);
            put_varint(&mut body, index - next);
            next = index + 1;
        }
    }
    for h in &histograms {
        for (_, count) in h.iter() {
            put_varint(&mut body, count - 1);
        }
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(AggregateError::Corrupt(format!("a block of {} bytes is larger than {MAX_BODY_BYTES}", body.len())));
    }
    Ok(body)
}

/// Decodes a block of the hour starting at `hour_start` into (minute
/// start, aggregate), ascending.
pub fn decode(hour_start: i64, bytes: &[u8]) -> Result<Vec<(i64, Aggregate)>, AggregateError> {
    let (&format, compressed) = bytes.split_first().ok_or_else(|| corrupt("empty block"))?;
    if format != BLOCK_FORMAT {
        return Err(corrupt(&format!("unknown block format {format}")));
    }
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| corrupt(&format!("block does not inflate: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(corrupt("block body is larger than the format allows"));
    }
    decode_body(hour_start, &body)
}

/// Decodes a body of [`encode_body`].
pub(super) fn decode_body(hour_start: i64, body: &[u8]) -> Result<Vec<(i64, Aggregate)>, AggregateError> {
    let mut r = Reader(body);
    let mask = r.varint()?;
    if mask >> MINUTES != 0 {
        return Err(corrupt("minute mask beyond the hour"));
    }
    let starts: Vec<i64> = (0..MINUTES).filter(|i| mask >> i & 1 == 1).map(|i| hour_start + i * MINUTE_S).collect();
    let n = starts.len();
    let counts = (0..n).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
    let sums = r.column(n, false)?;
    let mins = r.column(n, true)?;
    let maxes = r.column(n, true)?;
    let lasts = r.column(n, false)?;
    let mut out = Vec::with_capacity(n);
    for (i, &start) in starts.iter().enumerate() {
        let ms = start.saturating_mul(1000).wrapping_add(unzigzag(r.varint()?));
        out.push((
            start,
            Aggregate {
                count: counts[i],
                sum: Sum::of(sums[i].unwrap_or(0.0)),
                min: mins[i],
                max: maxes[i],
                last: lasts[i].unwrap_or(0.0),
                last_time_unix_nano: (ms.max(0) as u64).saturating_mul(1_000_000),
                samples: None,
            },
        ));
    }
    let with_samples: Vec<usize> = r.mask(n)?.iter().enumerate().filter(|(_, &has)| has).map(|(i, _)| i).collect();
    let mut scale = 0.0;
    let scales = with_samples.iter().map(|_| r.f64(&mut scale)).collect::<Result<Vec<_>, _>>()?;
    if !scales.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(corrupt("invalid scale"));
    }
    let sizes = (0..2 * with_samples.len()).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
    // Each bucket takes at least two bytes (its gap and its count).
    if sizes.iter().try_fold(0u64, |sum, &n| sum.checked_add(n)).is_none_or(|total| total > (r.0.len() / 2) as u64) {
        return Err(corrupt("more buckets than the block holds"));
    }
    let mut histograms: Vec<Vec<(u64, u64)>> = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let mut buckets = Vec::with_capacity(size as usize);
        let mut next = 0u64;
        for _ in 0..size {
            let index = next.checked_add(r.varint()?).ok_or_else(|| corrupt("bucket index overflows"))?;
            buckets.push((sparse::value_of_index(index).ok_or_else(|| corrupt("bucket index past the largest value"))?, 0));
            next = index + 1;
        }
        histograms.push(buckets);
    }
    for bucket in histograms.iter_mut().flatten() {
        bucket.1 = r.varint()?.checked_add(1).ok_or_else(|| corrupt("bucket count overflows"))?;
    }
    let mut histograms = histograms.into_iter().map(|b| Sparse::from_buckets(b).ok_or_else(|| corrupt("invalid histogram buckets")));
    for (&i, scale) in with_samples.iter().zip(scales) {
        let (Some(positive), Some(negative)) = (histograms.next(), histograms.next()) else { unreachable!("two sizes per minute") };
        out[i].1.samples = Some(Samples { scale, positive: positive?, negative: negative? });
    }
    if !r.0.is_empty() {
        return Err(corrupt("bytes after the last column"));
    }
    Ok(out)
}

fn corrupt(m: &str) -> AggregateError {
    AggregateError::Corrupt(m.to_owned())
}

fn minute_index(hour_start: i64, start: i64) -> Option<i64> {
    let offset = start.checked_sub(hour_start)?;
    (hour_start.rem_euclid(MINUTES * MINUTE_S) == 0 && (0..MINUTES * MINUTE_S).contains(&offset) && offset % MINUTE_S == 0)
        .then_some(offset / MINUTE_S)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// One double as its XOR with the column's previous value: a byte holding
/// how many of the XOR's bytes are zero at the top (high nibble) and at
/// the bottom (low nibble), then the bytes between, most significant first.
/// A repeated value takes one byte.
fn put_f64(out: &mut Vec<u8>, v: f64, previous: &mut f64) {
    let x = (v.to_bits() ^ previous.to_bits()).to_be_bytes();
    *previous = v;
    let lead = x.iter().take_while(|&&b| b == 0).count();
    let trail = if lead == 8 { 0 } else { x.iter().rev().take_while(|&&b| b == 0).count() };
    out.push((lead << 4 | trail) as u8);
    out.extend_from_slice(&x[lead..8 - trail]);
}

/// A column of optional doubles: a mask of those present (when `optional`),
/// then each present value ([`put_f64`]).
fn put_column(out: &mut Vec<u8>, values: impl Iterator<Item = Option<f64>> + Clone, optional: bool) {
    if optional {
        put_mask(out, values.clone().map(|v| v.is_some()));
    }
    let mut previous = 0.0;
    for v in values.flatten() {
        put_f64(out, v, &mut previous);
    }
}

fn put_mask(out: &mut Vec<u8>, bits: impl Iterator<Item = bool>) {
    put_varint(out, bits.enumerate().fold(0u64, |m, (i, b)| m | u64::from(b) << i));
}

/// The body, read from the front.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], AggregateError> {
        if n > self.0.len() as u64 {
            return Err(corrupt("block ends early"));
        }
        let (head, rest) = self.0.split_at(n as usize);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, AggregateError> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| corrupt("block ends early"))?;
        self.0 = rest;
        Ok(b)
    }

    pub(super) fn varint(&mut self) -> Result<u64, AggregateError> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            // The tenth byte may carry only the 64th bit.
            if shift == 63 && b > 1 {
                return Err(corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn f64(&mut self, previous: &mut f64) -> Result<f64, AggregateError> {
        let head = self.byte()?;
        let (lead, trail) = (usize::from(head >> 4), usize::from(head & 0xf));
        if lead + trail > 8 || (lead == 8 && trail != 0) {
            return Err(corrupt("invalid double"));
        }
        let mut x = [0u8; 8];
        for b in &mut x[lead..8 - trail] {
            *b = self.byte()?;
        }
        let v = f64::from_bits(u64::from_be_bytes(x) ^ previous.to_bits());
        *previous = v;
        Ok(v)
    }

    fn mask(&mut self, n: usize) -> Result<Vec<bool>, AggregateError> {
        let m = self.varint()?;
        if n < 64 && m >> n != 0 {
            return Err(corrupt("mask beyond the minutes present"));
        }
        Ok((0..n).map(|i| m >> i & 1 == 1).collect())
    }

    fn column(&mut self, n: usize, optional: bool) -> Result<Vec<Option<f64>>, AggregateError> {
        let present = if optional { self.mask(n)? } else { vec![true; n] };
        let mut previous = 0.0;
        present.into_iter().map(|p| p.then(|| self.f64(&mut previous)).transpose()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{Point, Value};

    const HOUR: i64 = 1_800_000_000 / 3600 * 3600;

    fn gauge_minute(start: i64, values: &[f64]) -> Aggregate {
        let mut a = Aggregate::empty(true, "ms");
        for (i, &v) in values.iter().enumerate() {
            let t = (start as u64 * 1000 + i as u64 * 7) * 1_000_000;
            a.add_point(&Point { time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() });
        }
        a
    }

    fn same(a: &Aggregate, b: &Aggregate) {
        assert_eq!(a.count, b.count);
        assert_eq!(a.sum.value().to_bits(), b.sum.value().to_bits());
        assert_eq!(a.min.map(f64::to_bits), b.min.map(f64::to_bits));
        assert_eq!(a.max.map(f64::to_bits), b.max.map(f64::to_bits));
        assert_eq!(a.last.to_bits(), b.last.to_bits());
        assert_eq!(a.last_time_unix_nano / 1_000_000, b.last_time_unix_nano / 1_000_000);
        assert_eq!(a.samples, b.samples);
    }

    #[test]
    fn every_minute_reads_back_exactly() {
        let values = [
            vec![1.0, 2.0, 2.0, 40.123],
            vec![-5.5, 0.0, f64::MIN_POSITIVE, 1.7e308],
            vec![-1e-300, -2.0],
            crate::fixtures::latencies(600, 9),
        ];
        let mut minutes: Vec<(i64, Aggregate)> =
            values.iter().enumerate().map(|(i, v)| (HOUR + i as i64 * 17 * 60, gauge_minute(HOUR + i as i64 * 17 * 60, v))).collect();
        // A counter minute (no samples, no histogram), and a minute whose
        // samples have another scale (its unit changed).
        let mut counter = Aggregate::empty(false, "1");
        counter.add_point(&Point {
            time_unix_nano: (HOUR as u64 + 3599) * 1_000_000_000,
            value: Some(Value::Counter(crate::point::Counter { value: 3.0, ..Default::default() })),
            ..Default::default()
        });
        minutes.push((HOUR + 59 * 60, counter));
        let mut seconds = Aggregate::empty(true, "s");
        seconds.add_point(&Point {
            time_unix_nano: (HOUR as u64 + 70) * 1_000_000_000,
            value: Some(Value::Gauge(0.25)),
            ..Default::default()
        });
        minutes.insert(1, (HOUR + 60, seconds));
        let refs: Vec<(i64, &Aggregate)> = minutes.iter().map(|(s, a)| (*s, a)).collect();
        let bytes = encode(HOUR, &refs).unwrap();
        let back = decode(HOUR, &bytes).unwrap();
        assert_eq!(back.len(), minutes.len());
        for ((s, a), (t, b)) in minutes.iter().zip(&back) {
            assert_eq!(s, t);
            same(a, b);
        }
        assert!(decode(HOUR, &encode(HOUR, &[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn minutes_outside_the_hour_or_out_of_order_are_refused() {
        let a = gauge_minute(HOUR, &[1.0]);
        for bad in [
            vec![(HOUR - 60, &a)],
            vec![(HOUR + 3600, &a)],
            vec![(HOUR + 30, &a)],
            vec![(HOUR + 60, &a), (HOUR, &a)],
            vec![(HOUR, &a), (HOUR, &a)],
        ] {
            assert!(
                matches!(encode(HOUR, &bad), Err(AggregateError::OutsideBlock { .. })),
                "{:?}",
                bad.iter().map(|b| b.0).collect::<Vec<_>>()
            );
        }
        assert!(encode(HOUR + 60, &[(HOUR + 60, &a)]).is_err(), "an hour start that is not one");
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let a = gauge_minute(HOUR, &crate::fixtures::latencies(60, 1));
        let good = encode(HOUR, &[(HOUR, &a), (HOUR + 120, &a)]).unwrap();
        assert!(decode(HOUR, &[]).is_err());
        assert!(decode(HOUR, &[2]).is_err());
        for cut in 1..good.len() {
            assert!(decode(HOUR, &good[..cut]).is_err(), "cut at {cut}");
        }
        // Bodies made by hand, compressed as a block is.
        let block = |body: &[u8]| {
            let mut e = flate2::write::DeflateEncoder::new(vec![BLOCK_FORMAT], flate2::Compression::fast());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        };
        let huge_mask = {
            let mut b = Vec::new();
            put_varint(&mut b, u64::MAX);
            b
        };
        assert!(decode(HOUR, &block(&huge_mask)).is_err());
        assert!(decode(HOUR, &block(&[0xff; 12])).is_err(), "a varint past 64 bits");
        // One minute with samples, whose histogram claims a billion buckets.
        let mut claims = Vec::new();
        for v in [1, 1] {
            put_varint(&mut claims, v); // the minute mask, its count
        }
        let mut previous = 0.0;
        put_f64(&mut claims, 1.0, &mut previous); // sum
        put_varint(&mut claims, 0); // no min
        put_varint(&mut claims, 0); // no max
        put_f64(&mut claims, 1.0, &mut 0.0); // last
        put_varint(&mut claims, 0); // its time
        put_varint(&mut claims, 1); // with samples
        put_f64(&mut claims, 1e6, &mut 0.0); // scale
        let valid_so_far = claims.len();
        put_varint(&mut claims, 1 << 30);
        let mut empty = claims[..valid_so_far].to_vec();
        empty.extend([0, 0]);
        assert_eq!(decode(HOUR, &block(&empty)).unwrap()[0].1.samples.as_ref().map(Samples::len), Some(0), "the hand-made body is valid");
        assert!(decode(HOUR, &block(&claims)).is_err());
        // An inflated body past the bound.
        assert!(decode(HOUR, &block(&vec![0; MAX_BODY_BYTES + 10])).is_err());
        // Bit flips anywhere: an error or some block, never a panic.
        for i in 1..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0x5a;
            let _ = decode(HOUR, &flipped);
        }
    }
}
