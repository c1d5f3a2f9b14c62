//! HdrHistogram's buckets (3 significant figures, unit 1), held sparsely:
//! the buckets that have samples, sorted, with their counts.
//!
//! A dense `hdrhistogram::Histogram<u64>` holds every bucket up to its largest
//! value: about 17,000 counters (139 KB) for nanosecond latencies of tens of
//! milliseconds, however few samples it has. A minute bucket has tens of
//! samples, and a query or a rollup run holds thousands of buckets at once,
//! which dense histograms do not fit in a Worker's 128 MB. This type keeps
//! 16 bytes per non-empty bucket and the exact same buckets, so the stored
//! format (HdrHistogram's V2 encoding) and every quantile are unchanged: it
//! converts to and from a dense histogram only to encode or decode one.

use hdrhistogram::Histogram;

/// 3 significant figures: 2,048 sub-buckets, of which the upper 1,024 are
/// used in every bucket after the first.
const SUB_BUCKET_BITS: u32 = 11;
const SUB_BUCKET_MASK: u64 = (1 << SUB_BUCKET_BITS) - 1;

/// log2 of the width of the bucket holding `v`.
fn width_bits(v: u64) -> u32 {
    let pow2_ceiling = 64 - (v | SUB_BUCKET_MASK).leading_zeros();
    pow2_ceiling - SUB_BUCKET_BITS
}

/// The smallest value in the same bucket as `v`.
pub fn lowest_equivalent(v: u64) -> u64 {
    let bits = width_bits(v);
    (v >> bits) << bits
}

/// The largest value in the same bucket as `v`.
pub fn highest_equivalent(v: u64) -> u64 {
    lowest_equivalent(v) + ((1u64 << width_bits(v)) - 1)
}

/// The middle of the bucket holding `v`.
pub fn median_equivalent(v: u64) -> u64 {
    lowest_equivalent(v) + ((1u64 << width_bits(v)) >> 1)
}

/// The lowest value of the bucket at `index` of HdrHistogram's counts array
/// (its `value_for`); `None` past the largest value.
pub fn value_of_index(index: u64) -> Option<u64> {
    const HALF_BITS: u32 = SUB_BUCKET_BITS - 1;
    const HALF: u64 = 1 << HALF_BITS;
    let bucket = (index >> HALF_BITS) as i64 - 1;
    let sub = (index & (HALF - 1)) + HALF;
    let (bucket, sub) = if bucket < 0 { (0, sub - HALF) } else { (bucket as u32, sub) };
    (bucket < 64 - SUB_BUCKET_BITS).then(|| sub << bucket)
}

/// The index in HdrHistogram's counts array of the bucket holding `v`: the
/// inverse of [`value_of_index`]. Neighbouring buckets have neighbouring
/// indexes, whatever their width, which keeps their gaps small numbers.
pub fn index_of(v: u64) -> u64 {
    let bits = width_bits(v);
    (u64::from(bits) << (SUB_BUCKET_BITS - 1)) + (v >> bits)
}

/// Counts per bucket, keyed by the bucket's lowest value, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sparse {
    buckets: Vec<(u64, u64)>,
    len: u64,
}

impl Sparse {
    /// Samples recorded (saturating at u64::MAX).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes of heap its buckets take.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(u64, u64)>()
    }

    /// Records `n` samples of `v`.
    pub fn record(&mut self, v: u64, n: u64) {
        let key = lowest_equivalent(v);
        match self.buckets.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(n),
            Err(i) => self.buckets.insert(i, (key, n)),
        }
        self.len = self.len.saturating_add(n);
    }

    /// Adds another's samples: a merge of two sorted lists, or, when the
    /// other is much smaller (a minute merged into a week), a lookup per
    /// bucket, so that a long window does not rebuild its list per merge.
    pub fn add(&mut self, other: &Sparse) {
        if other.buckets.is_empty() {
            return;
        }
        if other.buckets.len() * 64 < self.buckets.len() {
            for &(key, count) in &other.buckets {
                self.record(key, count);
            }
            return;
        }
        let (a, b) = (&self.buckets, &other.buckets);
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => {
                    merged.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(b[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push((a[i].0, a[i].1.saturating_add(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&a[i..]);
        merged.extend_from_slice(&b[j..]);
        self.buckets = merged;
        self.len = self.len.saturating_add(other.len);
    }

    /// Buckets from (lowest value, count) pairs: `None` unless the values
    /// are bucket starts in ascending order and every count is positive.
    pub fn from_buckets(buckets: Vec<(u64, u64)>) -> Option<Sparse> {
        let ordered = buckets.windows(2).all(|w| w[0].0 < w[1].0);
        let valid = buckets.iter().all(|&(k, n)| n > 0 && k <= super::MAX_SCALED && lowest_equivalent(k) == k);
        if !(ordered && valid) {
            return None;
        }
        let len = buckets.iter().fold(0u64, |sum, &(_, n)| sum.saturating_add(n));
        Some(Sparse { buckets, len })
    }

    /// Buckets with samples.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// (bucket's lowest value, count), ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().copied()
    }

    /// The bucket (its lowest value) of the k-th smallest sample, 1-based.
    pub fn nth_smallest(&self, k: u64) -> Option<u64> {
        let mut seen = 0u64;
        for &(key, count) in &self.buckets {
            seen = seen.saturating_add(count);
            if seen >= k {
                return Some(key);
            }
        }
        None
    }

    /// The same samples in a dense, auto-resizing histogram, to encode.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = super::new_histogram();
        for &(key, count) in &self.buckets {
            if h.record_n(key, count).is_err() {
                h.saturating_record_n(key, count);
            }
        }
        h
    }

    /// Decodes HdrHistogram's compressed V2 encoding straight into sparse
    /// buckets. The crate's deserializer first allocates the dense histogram
    /// the header describes, which made decoding most of a query's CPU time
    /// (docs/PERFORMANCE.md); this reads only the counts that are there.
    /// `None` if the bytes are not a V2 histogram of this module's
    /// configuration (then the caller falls back to the crate).
    pub fn from_v2_deflate(bytes: &[u8]) -> Option<Sparse> {
        use std::io::Read;
        const V2_COOKIE: u32 = 0x1c84_9313;
        const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
        const HEADER: usize = 40;
        let be32 = |b: &[u8], at: usize| Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?));
        let be64 = |b: &[u8], at: usize| Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?));
        if be32(bytes, 0)? != V2_COMPRESSED_COOKIE {
            return None;
        }
        let compressed = bytes.get(8..8 + be32(bytes, 4)? as usize)?;
        let mut inner = Vec::new();
        flate2::read::ZlibDecoder::new(compressed).read_to_end(&mut inner).ok()?;
        let payload_len = be32(&inner, 4)? as usize;
        let plain_config = be32(&inner, 0)? == V2_COOKIE
            && be32(&inner, 8)? == 0
            && be32(&inner, 12)? == u32::from(super::SIGNIFICANT_FIGURES)
            && be64(&inner, 16)? == 1
            && f64::from_bits(be64(&inner, 32)?) == 1.0;
        if !plain_config {
            return None;
        }
        let mut counts = inner.get(HEADER..HEADER + payload_len)?;
        let mut s = Sparse::default();
        let mut index: u64 = 0;
        while !counts.is_empty() {
            // LEB128, at most 9 bytes (the 9th carries 8 bits), zig-zag:
            // a count, or minus a run of empty buckets.
            let mut raw: u64 = 0;
            let mut used = 0;
            loop {
                let b = *counts.get(used)?;
                if used == 8 {
                    raw |= u64::from(b) << 56;
                    used += 1;
                    break;
                }
                raw |= u64::from(b & 0x7f) << (7 * used);
                used += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
            counts = &counts[used..];
            let n = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            if n < 0 {
                index = index.checked_add(n.unsigned_abs())?;
                continue;
            }
            if n > 0 {
                let value = value_of_index(index)?;
                s.buckets.push((value, n as u64));
                s.len = s.len.saturating_add(n as u64);
            }
            index += 1;
        }
        Some(s)
    }

    /// The samples of a dense histogram (one just decoded).
    pub fn from_histogram(h: &Histogram<u64>) -> Sparse {
        let mut s = Sparse::default();
        for it in h.iter_recorded() {
            // Recorded buckets come in ascending order, one entry each.
            s.buckets.push((lowest_equivalent(it.value_iterated_to()), it.count_at_value()));
            s.len = s.len.saturating_add(it.count_at_value());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_hdrhistograms() {
        let h = super::super::new_histogram();
        let mut values: Vec<u64> = (0..5000).collect();
        for shift in 11..62 {
            let p = 1u64 << shift;
            values.extend([p - 1, p, p + 1, p + p / 3, p + p / 2 + 7]);
        }
        values.push(1 << 62);
        for v in values {
            assert_eq!(lowest_equivalent(v), h.lowest_equivalent(v), "lowest of {v}");
            assert_eq!(highest_equivalent(v), h.highest_equivalent(v), "highest of {v}");
            assert_eq!(median_equivalent(v), h.median_equivalent(v), "median of {v}");
        }
    }

    #[test]
    fn indexes_and_values_are_inverse() {
        let mut values: Vec<u64> = (0..5000).collect();
        for shift in 11..62 {
            let p = 1u64 << shift;
            values.extend([p - 1, p, p + 1, p + p / 3]);
        }
        values.push(super::super::MAX_SCALED);
        values.sort_unstable();
        let mut last = None;
        for v in values {
            let i = index_of(v);
            assert_eq!(value_of_index(i), Some(lowest_equivalent(v)), "{v}");
            assert!(last.is_none_or(|l| l <= i), "indexes ascend with values");
            last = Some(i);
        }
        assert!(Sparse::from_buckets(vec![(5, 1), (3, 1)]).is_none(), "descending");
        assert!(Sparse::from_buckets(vec![(2049, 1)]).is_none(), "not a bucket start");
        assert!(Sparse::from_buckets(vec![(5, 0)]).is_none(), "empty bucket");
        assert_eq!(Sparse::from_buckets(vec![(3, 2), (2048, u64::MAX)]).map(|s| s.len()), Some(u64::MAX));
    }

    #[test]
    fn record_add_and_round_trip() {
        let mut a = Sparse::default();
        for v in [5u64, 40_000_000, 40_000_001, 3, 5] {
            a.record(v, 1);
        }
        assert_eq!(a.len(), 5);
        assert_eq!(a.iter().map(|(_, c)| c).collect::<Vec<_>>(), [1, 2, 2]);
        let mut b = Sparse::default();
        b.record(4, 2);
        b.record(40_000_000, 1);
        b.record(u64::MAX >> 2, 1);
        let mut merged = a.clone();
        merged.add(&b);
        let mut by_records = a.clone();
        for (k, c) in b.iter() {
            by_records.record(k, c);
        }
        assert_eq!(merged, by_records);
        assert_eq!(merged.len(), 9);
        // A small list into a large one takes the lookup path; same result.
        let mut large = Sparse::default();
        for v in 0..20_000u64 {
            large.record(v * 7919, 1);
        }
        let (mut looked_up, mut by_records) = (large.clone(), large.clone());
        looked_up.add(&b);
        for (k, c) in b.iter() {
            by_records.record(k, c);
        }
        assert_eq!(looked_up, by_records);
        assert_eq!(merged.nth_smallest(1), Some(3));
        assert_eq!(merged.nth_smallest(4), Some(5));
        assert_eq!(merged.nth_smallest(9), Some(lowest_equivalent(u64::MAX >> 2)));
        assert_eq!(merged.nth_smallest(10), None);
        assert_eq!(Sparse::from_histogram(&merged.to_histogram()), merged);
    }

    #[test]
    fn decodes_what_the_crate_encodes() {
        use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
        let cases: Vec<Vec<(u64, u64)>> = vec![
            vec![(0, 1)],
            vec![(1, 3), (2047, 1), (2048, 1), (40_000_000, 60)],
            // Counts that need every varint byte, values near the top.
            vec![(5, u64::MAX >> 2), (1 << 62, 1), ((1 << 61) + 12_345, 2)],
            (0..3000u64).map(|i| (i * i * 977 + 1, i + 1)).collect(),
        ];
        for case in cases {
            let mut h = super::super::new_histogram();
            for &(v, n) in &case {
                h.record_n(v, n).unwrap();
            }
            let mut bytes = Vec::new();
            V2DeflateSerializer::new().serialize(&h, &mut bytes).unwrap();
            let direct = Sparse::from_v2_deflate(&bytes).expect("decodable");
            assert_eq!(direct, Sparse::from_histogram(&h));
            assert_eq!(direct.len(), case.iter().map(|c| c.1).sum::<u64>());
        }
        assert_eq!(Sparse::from_v2_deflate(b"not a histogram"), None);
        assert_eq!(Sparse::from_v2_deflate(&[0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 9, 1, 2]), None);
    }
}
