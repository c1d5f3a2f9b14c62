//! Points → queue messages. Points go into encoded [`Batch`]es of at most
//! [`MAX_MESSAGE_BYTES`]; consecutive batches are then compressed together
//! into archive members ([`proto::archive::encode`]) that fit a queue message
//! (128 KB), which the consumer concatenates into an archive as they are.
//!
//! Compressing here rather than in the consumer is the cheaper end: the
//! queue then carries a tenth of the bytes (the hand-off, not the
//! compression, is what costs), and the consumer does no work per byte.

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use prost::Message;
use proto::normalize::Group;
use proto::point::{merge_labels, Batch, Distribution, Label, Point, Value};
use std::collections::HashMap;

/// A queue message may hold 128 KB; stay clear of it.
pub const MAX_MESSAGE_BYTES: usize = 120 * 1024;

/// Raw batches packed into one message before compressing: a 1,000-point
/// request (about 190 KB of batches) becomes one message of about 15 KB.
const RAW_BYTES_PER_MESSAGE: usize = 1 << 20;

/// Queue messages (archive members), plus the points too large for any
/// message.
#[derive(Debug, Default)]
pub struct Split {
    pub messages: Vec<Vec<u8>>,
    pub oversized: usize,
}

/// The labels every point has (same key and value) beyond its group's.
/// They travel once per batch instead of once per point.
fn common_labels(points: &[Point]) -> Vec<Label> {
    let Some(first) = points.first() else { return Vec::new() };
    let mut shared = first.labels.clone();
    for p in &points[1..] {
        shared.retain(|l| p.labels.binary_search_by(|x| x.key.cmp(&l.key)).is_ok_and(|i| p.labels[i].value == l.value));
        if shared.is_empty() {
            break;
        }
    }
    shared
}

/// Splits the groups' points into encoded batches of at most `max_bytes` and
/// packs those into queue messages of at most `max_bytes` compressed. Each
/// batch's id is `<request_id>-<n>`, unique per batch. A group's labels, and
/// any more that all its points share, become its batches' `shared_labels`.
pub fn split(tenant: &str, request_id: &str, seed: u64, groups: Vec<Group>, max_bytes: usize) -> Split {
    let mut batches = Vec::new();
    let mut oversized = 0;
    let of = BatchOf { tenant, request_id, seed };
    for g in groups {
        oversized += group_batches(&of, g, max_bytes, &mut batches);
    }
    let mut messages = Vec::new();
    let mut start = 0;
    let mut raw = 0;
    for (i, b) in batches.iter().enumerate() {
        if i > start && raw + b.len() > RAW_BYTES_PER_MESSAGE {
            pack(&batches[start..i], max_bytes, &mut messages);
            (start, raw) = (i, 0);
        }
        raw += b.len();
    }
    pack(&batches[start..], max_bytes, &mut messages);
    Split { messages, oversized }
}

/// Compresses `batches` into one message, or into halves (recursively) when
/// they compress too poorly to fit. One batch of at most `max_bytes` always
/// fits: gzip adds 18 bytes and 5 per 64 KB stored block to data that does
/// not compress, and the queue's limit is 128 KB.
fn pack(batches: &[Vec<u8>], max_bytes: usize, out: &mut Vec<Vec<u8>>) {
    if batches.is_empty() {
        return;
    }
    let message = proto::archive::encode(&batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    if message.len() <= max_bytes || batches.len() == 1 {
        out.push(message);
    } else {
        let (a, b) = batches.split_at(batches.len() / 2);
        pack(a, max_bytes, out);
        pack(b, max_bytes, out);
    }
}

/// A batch's string table under construction: each label key and value
/// once, referred to by index from the points (archive format 3).
struct Strings {
    index: HashMap<String, u32, SeedableRandomState>,
    /// Encoded bytes the table adds to its batch.
    bytes: usize,
}

impl Strings {
    /// `seed` keys the hash per request, so that label values a sender
    /// crafted to collide cannot make the table quadratic.
    fn new(seed: u64) -> Strings {
        Strings { index: HashMap::with_hasher(SeedableRandomState::with_seed(seed, SharedSeed::global_fixed())), bytes: 0 }
    }

    fn intern(&mut self, s: String) -> u32 {
        if let Some(&i) = self.index.get(s.as_str()) {
            return i;
        }
        let i = self.index.len() as u32;
        // Tag, length and the bytes.
        self.bytes += 1 + prost::length_delimiter_len(s.len()) + s.len();
        self.index.insert(s, i);
        i
    }

    /// Moves labels into the table, as the point's references.
    fn refer(&mut self, p: &mut Point, labels: Vec<Label>) {
        p.label_refs.reserve(labels.len() * 2);
        for l in labels {
            let key = self.intern(l.key);
            let value = self.intern(l.value);
            p.label_refs.extend([key, value]);
        }
    }

    /// At least the bytes that [`refer`](Self::refer)ring to `labels` would
    /// add to a batch: new strings, and the references.
    fn cost(&self, labels: &[Label]) -> usize {
        let mut next = self.index.len();
        let mut bytes = 0;
        for s in labels.iter().flat_map(|l| [&l.key, &l.value]) {
            let i = match self.index.get(s.as_str()) {
                Some(&i) => i as usize,
                None => {
                    bytes += 1 + prost::length_delimiter_len(s.len()) + s.len();
                    next += 1;
                    next - 1
                }
            };
            bytes += prost::encoding::encoded_len_varint(i as u64);
        }
        // The packed field's tag and length.
        bytes + 1 + prost::length_delimiter_len(bytes)
    }

    /// The table, in index order; the table is empty afterwards.
    fn take(&mut self) -> Vec<String> {
        let mut strings = vec![String::new(); self.index.len()];
        for (s, i) in self.index.drain() {
            strings[i as usize] = s;
        }
        self.bytes = 0;
        strings
    }
}

/// Adds one group's points to `out` as encoded batches of at most
/// `max_bytes`; returns how many points did not fit any.
fn group_batches(batch: &BatchOf<'_>, group: Group, max_bytes: usize, out: &mut Vec<Vec<u8>>) -> usize {
    let Group { labels, mut points } = group;
    let mut oversized = 0;
    let common = common_labels(&points);
    if !common.is_empty() {
        for p in &mut points {
            p.labels.retain(|l| common.binary_search_by(|x| x.key.cmp(&l.key)).is_err());
        }
    }
    let shared = merge_labels(&labels, &common);
    let mut current: Vec<Point> = Vec::new();
    let mut strings = Strings::new(batch.seed);
    let header = batch.tenant.len() + batch.request_id.len() + 32 + shared.iter().map(|l| l.encoded_len() + 3).sum::<usize>();
    let mut size = header;
    let flush = |points: &mut Vec<Point>, strings: &mut Strings, out: &mut Vec<Vec<u8>>| {
        if !points.is_empty() {
            let batch = Batch {
                tenant: batch.tenant.to_owned(),
                batch_id: format!("{}-{}", batch.request_id, out.len()),
                points: std::mem::take(points),
                shared_labels: shared.clone(),
                strings: strings.take(),
            };
            out.push(batch.encode_to_vec());
        }
    };
    for mut p in points.into_iter().flat_map(|p| fit(p, max_bytes.saturating_sub(header) / 2)) {
        let labels = std::mem::take(&mut p.labels);
        let framed = |len: usize| len + 1 + prost::length_delimiter_len(len);
        let base = p.encoded_len();
        if size + strings.bytes + framed(base + strings.cost(&labels)) > max_bytes {
            // Into a fresh batch, with a fresh table.
            flush(&mut current, &mut strings, out);
            size = header;
            if header + framed(base + strings.cost(&labels)) > max_bytes {
                oversized += 1;
                continue;
            }
        }
        strings.refer(&mut p, labels);
        size += framed(p.encoded_len());
        current.push(p);
    }
    flush(&mut current, &mut strings, out);
    oversized
}

/// What every batch of a request has.
struct BatchOf<'a> {
    tenant: &'a str,
    request_id: &'a str,
    seed: u64,
}

/// Splits a distribution point with so many samples that it would not fit a
/// message into several points of the same series and time, which merge back
/// into exactly the original: the first part keeps the sum, the extremes and
/// any count not covered by samples; the samples are shared out.
fn fit(p: Point, budget: usize) -> Vec<Point> {
    // 9 bytes of value and up to 11 of count per sample, plus a margin.
    const BYTES_PER_SAMPLE: usize = 20;
    let per_part = (budget / BYTES_PER_SAMPLE).max(1);
    let Some(Value::Distribution(d)) = &p.value else { return vec![p] };
    if d.values.len() <= per_part || p.encoded_len() <= budget {
        return vec![p];
    }
    let covered: u64 = d.counts.iter().sum();
    let mut parts = Vec::new();
    for (i, (values, counts)) in d.values.chunks(per_part).zip(d.counts.chunks(per_part)).enumerate() {
        let first = i == 0;
        let part = Distribution {
            count: counts.iter().sum::<u64>() + if first { d.count.saturating_sub(covered) } else { 0 },
            sum: if first { d.sum } else { 0.0 },
            min: if first { d.min } else { None },
            max: if first { d.max } else { None },
            values: values.to_vec(),
            counts: counts.to_vec(),
            cumulative: d.cumulative,
            start_time_unix_nano: d.start_time_unix_nano,
            exponential_scale: d.exponential_scale,
        };
        parts.push(Point { value: Some(Value::Distribution(part)), ..p.clone() });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Label, Value};

    fn one(points: Vec<Point>) -> Vec<Group> {
        vec![Group { labels: Vec::new(), points }]
    }

    /// The batches as sent: label references unresolved.
    fn sent(messages: &[Vec<u8>]) -> Vec<Batch> {
        use std::io::Read;
        let mut out = Vec::new();
        for m in messages {
            let mut raw = Vec::new();
            flate2::read::MultiGzDecoder::new(m.as_slice()).read_to_end(&mut raw).unwrap();
            out.extend(proto::archive::Archive::decode(raw.as_slice()).unwrap().batches);
        }
        out
    }

    /// The batches of each message, read back as the rollup will.
    fn read(messages: &[Vec<u8>]) -> Vec<Vec<Batch>> {
        messages.iter().map(|m| proto::archive::decode(m).unwrap().batches).collect()
    }

    fn points(n: usize, label_len: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                metric: "m".into(),
                // Distinct per point, so that it is not a shared label.
                labels: vec![Label { key: "k".into(), value: format!("{}{i}", "x".repeat(label_len)) }],
                time_unix_nano: i as u64,
                value: Some(Value::Gauge(i as f64)),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn every_point_lands_in_exactly_one_message_under_the_limit() {
        let split = split("t", "req", 1, one(points(5000, 100)), MAX_MESSAGE_BYTES);
        let mut seen = Vec::new();
        let batches: Vec<Batch> = read(&split.messages).into_iter().flatten().collect();
        assert!(batches.len() > 1);
        for (i, b) in sent(&split.messages).iter().enumerate() {
            assert!(b.encoded_len() <= MAX_MESSAGE_BYTES, "batch {i} is {} bytes", b.encoded_len());
            assert!(b.points.iter().all(|p| p.labels.is_empty() && p.label_refs.len() == 2));
        }
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(b.tenant, "t");
            assert_eq!(b.batch_id, format!("req-{i}"));
            seen.extend(b.points.iter().map(|p| p.time_unix_nano));
        }
        assert_eq!(seen, (0..5000).collect::<Vec<u64>>());
        assert_eq!(split.oversized, 0);
        // 5,000 points compress into one message.
        assert_eq!(split.messages.len(), 1);
    }

    #[test]
    fn data_that_does_not_compress_still_fits_messages() {
        // Label values of random bytes (as hex: compressible only ~2x).
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |n: usize| {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b'!' + (seed % 90) as u8)
                })
                .collect::<String>()
        };
        let ps: Vec<Point> = (0..3000)
            .map(|i| Point {
                metric: "m".into(),
                labels: vec![Label { key: "k".into(), value: random(300) }],
                time_unix_nano: i,
                ..Default::default()
            })
            .collect();
        let split = split("t", "r", 1, one(ps), MAX_MESSAGE_BYTES);
        assert!(split.messages.len() > 1);
        assert!(split.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        let times: Vec<u64> = read(&split.messages).into_iter().flatten().flat_map(|b| b.points).map(|p| p.time_unix_nano).collect();
        assert_eq!(times, (0..3000).collect::<Vec<u64>>());
    }

    #[test]
    fn points_larger_than_a_message_are_counted_not_sent() {
        let mut ps = points(2, 10);
        ps.extend(points(1, 200_000));
        let split = split("t", "r", 1, one(ps), MAX_MESSAGE_BYTES);
        assert_eq!(split.oversized, 1);
        assert_eq!(split.messages.len(), 1);
        assert_eq!(read(&split.messages)[0][0].points.len(), 2);
    }

    #[test]
    fn a_distribution_too_large_for_one_message_is_shared_out_exactly() {
        let n = 40_000;
        let d = Distribution {
            count: n as u64 + 5,
            sum: 123.0,
            min: Some(0.5),
            max: Some(9e9),
            values: (0..n).map(|i| i as f64 * 1.25).collect(),
            counts: vec![1; n],
            ..Default::default()
        };
        let p = Point { metric: "d".into(), time_unix_nano: 7, value: Some(Value::Distribution(d.clone())), ..Default::default() };
        let split = split("t", "r", 1, one(vec![p]), MAX_MESSAGE_BYTES);
        assert_eq!(split.oversized, 0);
        let batches: Vec<Batch> = read(&split.messages).into_iter().flatten().collect();
        assert!(batches.len() > 1);
        let parts: Vec<Distribution> = batches
            .into_iter()
            .flat_map(|b| b.points)
            .map(|p| match p.value {
                Some(Value::Distribution(d)) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(parts.iter().map(|p| p.count).sum::<u64>(), d.count);
        assert_eq!(parts.iter().map(|p| p.sum).sum::<f64>(), d.sum);
        assert_eq!(parts.iter().flat_map(|p| p.values.clone()).collect::<Vec<_>>(), d.values);
        assert_eq!((parts[0].min, parts[0].max), (d.min, d.max));
    }

    #[test]
    fn labels_every_point_has_travel_once_per_batch() {
        let mut ps = points(3, 5);
        for (i, p) in ps.iter_mut().enumerate() {
            p.labels.insert(0, Label { key: "a.service".into(), value: "api".into() });
            p.labels.push(Label { key: "z".into(), value: format!("{i}") });
        }
        let full: Vec<Vec<Label>> = ps.iter().map(|p| p.labels.clone()).collect();
        let split = split("t", "r", 1, one(ps), MAX_MESSAGE_BYTES);
        let batch = read(&split.messages).remove(0).remove(0);
        assert_eq!(batch.shared_labels.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["a.service"]);
        assert!(batch.points.iter().all(|p| p.labels.len() == 2), "the labels that differ stay on the point");
        let rebuilt: Vec<Vec<Label>> = batch.points.iter().map(|p| batch.labels_of(p)).collect();
        assert_eq!(rebuilt, full);
    }

    #[test]
    fn each_group_has_its_batches_with_its_shared_labels() {
        let label = |k: &str, v: &str| Label { key: k.into(), value: v.into() };
        let mut a = points(2, 1);
        a[0].labels.push(label("service.name", "own"));
        let groups = vec![
            Group { labels: vec![label("service.name", "a")], points: a },
            Group { labels: vec![label("service.name", "b")], points: points(1, 1) },
        ];
        let batches = read(&split("t", "r", 1, groups, MAX_MESSAGE_BYTES).messages).remove(0);
        let ids: Vec<&str> = batches.iter().map(|b| b.batch_id.as_str()).collect();
        assert_eq!(ids, ["r-0", "r-1"]);
        let service = |b: &Batch, p: &Point| b.labels_of(p).into_iter().find(|l| l.key == "service.name").unwrap().value;
        assert_eq!(service(&batches[0], &batches[0].points[0]), "own", "a point's own label wins");
        assert_eq!(service(&batches[0], &batches[0].points[1]), "a");
        assert_eq!(service(&batches[1], &batches[1].points[0]), "b");
    }

    #[test]
    fn label_strings_travel_once_per_batch() {
        let label = |k: &str, v: &str| Label { key: k.into(), value: v.into() };
        let ps: Vec<Point> = (0..100)
            .map(|i| Point {
                metric: "m".into(),
                labels: vec![label("method", ["GET", "POST"][i % 2]), label("route", "/a"), label("status", ["GET", "200"][i % 3 / 2])],
                time_unix_nano: i as u64,
                ..Default::default()
            })
            .collect();
        let full: Vec<Vec<Label>> = ps.iter().map(|p| p.labels.clone()).collect();
        let split = split("t", "r", 1, one(ps), MAX_MESSAGE_BYTES);
        let sent = sent(&split.messages);
        let mut strings = sent[0].strings.clone();
        strings.sort();
        assert_eq!(strings, ["200", "GET", "POST", "method", "status"], "each string once");
        assert_eq!(sent[0].shared_labels, [label("route", "/a")], "common to all points");
        let batch = read(&split.messages).remove(0).remove(0);
        assert_eq!(batch.points.iter().map(|p| batch.labels_of(p)).collect::<Vec<_>>(), full);
    }

    #[test]
    fn no_points_no_messages() {
        assert!(split("t", "r", 1, Vec::new(), MAX_MESSAGE_BYTES).messages.is_empty());
    }
}
