//! The write-optimised level (issue #11): what one rollup commit adds to
//! the minutes of one hour, for the series of one metric, as one row
//! (or a few parts) instead of a row per series and minute. An hourly
//! compaction merges an hour's head rows into one [`block`] per series
//! and deletes them.
//!
//! # Format 1
//!
//! `[1][raw DEFLATE of the entries]`, each entry being the series' catalog
//! id (zig-zag varint), the length of its body (varint) and the body: the
//! series' minutes of the hour as a [`block`] body before compression. The
//! entries are compressed together (one DEFLATE stream a part, not one a
//! series), and a reader skips the series it does not want without
//! decoding them.
//!
//! # Bounds
//!
//! [`encode`] cuts a new part before its entries pass [`PART_BYTES`], so a
//! part stays far below D1's 2 MB a value. A part inflates to at most
//! [`MAX_BODY_BYTES`]; decoding stops there, so a corrupt or hostile blob
//! costs at most that much work.

use super::block::{self, Reader};
use super::{Aggregate, AggregateError};
use std::io::{Read, Write};

/// The head format version: the first byte.
const HEAD_FORMAT: u8 = 1;

/// Entry bytes after which [`encode`] starts a new part (before
/// compression; one series' entry can make a part longer).
pub const PART_BYTES: usize = 512 << 10;

/// The most bytes a part inflates to: a part holds one series' entry of at
/// most [`block::MAX_BODY_BYTES`] beyond [`PART_BYTES`].
pub const MAX_BODY_BYTES: usize = PART_BYTES + block::MAX_BODY_BYTES + 32;

/// One series' minutes of the hour, ascending.
pub type Minutes<'a> = (i64, Vec<(i64, &'a Aggregate)>);

/// One series' minutes as [`decode`] gives them back.
pub type Decoded = (i64, Vec<(i64, Aggregate)>);

/// Encodes `series` (catalog id and its minutes of the hour starting at
/// `hour_start`) as one part or more.
pub fn encode(hour_start: i64, series: &[Minutes<'_>]) -> Result<Vec<Vec<u8>>, AggregateError> {
    let mut parts = Vec::new();
    let mut body = Vec::new();
    for (id, minutes) in series {
        let entry = block::encode_body(hour_start, minutes)?;
        if !body.is_empty() && body.len() + entry.len() > PART_BYTES {
            parts.push(compress(&body)?);
            body.clear();
        }
        block::put_varint(&mut body, block::zigzag(*id));
        block::put_varint(&mut body, entry.len() as u64);
        body.extend_from_slice(&entry);
    }
    if !body.is_empty() {
        parts.push(compress(&body)?);
    }
    Ok(parts)
}

fn compress(body: &[u8]) -> Result<Vec<u8>, AggregateError> {
    // Fast rather than best: a head row lives an hour at most.
    let mut out = flate2::write::DeflateEncoder::new(vec![HEAD_FORMAT], flate2::Compression::fast());
    out.write_all(body).and_then(|_| out.finish()).map_err(|e| AggregateError::Corrupt(e.to_string()))
}

/// Decodes the entries of a part of the hour starting at `hour_start`
/// whose series `wanted` accepts, in the part's order; the others are
/// skipped undecoded.
pub fn decode(hour_start: i64, bytes: &[u8], wanted: impl Fn(i64) -> bool) -> Result<Vec<Decoded>, AggregateError> {
    let body = inflate(bytes)?;
    let mut r = Reader(&body);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let id = block::unzigzag(r.varint()?);
        let len = r.varint()?;
        let entry = r.take(len)?;
        if wanted(id) {
            out.push((id, block::decode_body(hour_start, entry)?));
        }
    }
    Ok(out)
}

/// A part's entries, inflated within [`MAX_BODY_BYTES`].
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, AggregateError> {
    let (&format, compressed) = bytes.split_first().ok_or_else(|| corrupt("empty head part"))?;
    if format != HEAD_FORMAT {
        return Err(corrupt(&format!("unknown head format {format}")));
    }
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| corrupt(&format!("head part does not inflate: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(corrupt("head part is larger than the format allows"));
    }
    Ok(body)
}

/// The series of a part and the bytes of each one's entry, without
/// decoding them: what compaction plans its memory by.
pub fn sizes(bytes: &[u8]) -> Result<Vec<(i64, usize)>, AggregateError> {
    let body = inflate(bytes)?;
    let mut r = Reader(&body);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let id = block::unzigzag(r.varint()?);
        let len = r.varint()?;
        out.push((id, r.take(len)?.len()));
    }
    Ok(out)
}

fn corrupt(m: &str) -> AggregateError {
    AggregateError::Corrupt(m.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{Point, Value};

    const HOUR: i64 = 1_800_000_000 / 3600 * 3600;

    fn minute(start: i64, values: &[f64]) -> Aggregate {
        let mut a = Aggregate::empty(true, "ms");
        for (i, &v) in values.iter().enumerate() {
            let t = (start as u64 * 1000 + i as u64 * 11) * 1_000_000;
            a.add_point(&Point { time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() });
        }
        a
    }

    /// Debug prints every double exactly (shortest round trip). A sum is
    /// kept as one double, as in rows.
    fn dbg(minutes: &[(i64, Aggregate)]) -> String {
        let kept: Vec<(i64, Aggregate)> =
            minutes.iter().map(|(s, a)| (*s, Aggregate { sum: crate::sum::Sum::of(a.sum.value()), ..a.clone() })).collect();
        format!("{kept:?}")
    }

    #[test]
    fn entries_read_back_and_unwanted_series_are_skipped() {
        let a = [minute(HOUR, &[1.0, 2.5]), minute(HOUR + 60, &[3.0]), minute(HOUR + 3540, &[-7.25, 1e300])];
        let series = vec![(-5, vec![(HOUR, &a[0]), (HOUR + 3540, &a[2])]), (42, vec![(HOUR + 60, &a[1])])];
        let parts = encode(HOUR, &series).unwrap();
        assert_eq!(parts.len(), 1);
        let all = decode(HOUR, &parts[0], |_| true).unwrap();
        let ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [-5, 42]);
        assert_eq!(dbg(&all[0].1), dbg(&[(HOUR, a[0].clone()), (HOUR + 3540, a[2].clone())]));
        assert_eq!(dbg(&all[1].1), dbg(&[(HOUR + 60, a[1].clone())]));
        let one = decode(HOUR, &parts[0], |id| id == 42).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].0, dbg(&one[0].1)), (42, dbg(&[(HOUR + 60, a[1].clone())])));
    }

    #[test]
    fn parts_are_cut_at_the_part_size_and_keep_every_series() {
        let values: Vec<f64> = (0..400).map(|i| f64::from(i) * 1.37).collect();
        let a = minute(HOUR, &values);
        let series: Vec<Minutes<'_>> = (0..2_000).map(|id| (id, vec![(HOUR, &a)])).collect();
        let parts = encode(HOUR, &series).unwrap();
        assert!(parts.len() > 1, "{} parts", parts.len());
        let mut ids = Vec::new();
        for p in &parts {
            assert!(p.len() < 2_000_000);
            ids.extend(decode(HOUR, p, |_| true).unwrap().into_iter().map(|(id, m)| {
                assert_eq!(dbg(&m), dbg(&[(HOUR, a.clone())]));
                id
            }));
        }
        assert_eq!(ids, (0..2_000).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_parts_are_errors_not_panics() {
        let a = minute(HOUR, &[1.0, 2.0]);
        let part = encode(HOUR, &[(7, vec![(HOUR, &a)])]).unwrap().remove(0);
        assert!(decode(HOUR, &[], |_| true).is_err());
        assert!(decode(HOUR, &[2, 0], |_| true).is_err());
        for cut in 1..part.len() {
            let _ = decode(HOUR, &part[..cut], |_| true);
        }
        for i in 1..part.len() {
            let mut flipped = part.clone();
            flipped[i] ^= 0x5a;
            let _ = decode(HOUR, &flipped, |_| true);
        }
        // An entry claiming more bytes than follow.
        let mut body = Vec::new();
        block::put_varint(&mut body, block::zigzag(1));
        block::put_varint(&mut body, 1 << 40);
        assert!(decode(HOUR, &compress(&body).unwrap(), |_| true).is_err());
        // A bomb: more than the bound once inflated.
        let bomb = compress(&vec![0u8; MAX_BODY_BYTES + 10]).unwrap();
        assert!(decode(HOUR, &bomb, |_| true).is_err());
    }
}
