//! Points → queue messages: encoded [`Batch`]es small enough for a Queue
//! message (128 KB), which the consumer concatenates into an archive.

use prost::Message;
use proto::point::{Batch, Distribution, Label, Point, Value};

/// A queue message may hold 128 KB; stay clear of it.
pub const MAX_MESSAGE_BYTES: usize = 120 * 1024;

/// Encoded messages, plus the points too large for any message.
#[derive(Debug, Default)]
pub struct Split {
    pub messages: Vec<Vec<u8>>,
    pub oversized: usize,
}

/// The labels every point has (same key and value): typically the
/// resource's. They travel once per batch instead of once per point.
fn shared_labels(points: &[Point]) -> Vec<Label> {
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

/// Splits `points` into encoded batches of at most `max_bytes`. Each batch's
/// id is `<request_id>-<n>`, unique per message. Labels all points share are
/// moved into each batch's `shared_labels`.
pub fn split(tenant: &str, request_id: &str, mut points: Vec<Point>, max_bytes: usize) -> Split {
    let mut out = Split::default();
    let shared = shared_labels(&points);
    if !shared.is_empty() {
        for p in &mut points {
            p.labels.retain(|l| shared.binary_search_by(|x| x.key.cmp(&l.key)).is_err());
        }
    }
    let mut current: Vec<Point> = Vec::new();
    let header = tenant.len() + request_id.len() + 32 + shared.iter().map(|l| l.encoded_len() + 3).sum::<usize>();
    let mut size = header;
    let flush = |points: &mut Vec<Point>, out: &mut Split| {
        if !points.is_empty() {
            let batch = Batch {
                tenant: tenant.to_owned(),
                batch_id: format!("{request_id}-{}", out.messages.len()),
                points: std::mem::take(points),
                shared_labels: shared.clone(),
            };
            out.messages.push(batch.encode_to_vec());
        }
    };
    for p in points.into_iter().flat_map(|p| fit(p, max_bytes.saturating_sub(header) / 2)) {
        // Tag, length prefix and the point itself.
        let len = p.encoded_len() + 1 + prost::length_delimiter_len(p.encoded_len());
        if header + len > max_bytes {
            out.oversized += 1;
            continue;
        }
        if size + len > max_bytes {
            flush(&mut current, &mut out);
            size = header;
        }
        size += len;
        current.push(p);
    }
    flush(&mut current, &mut out);
    out
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
        };
        parts.push(Point { value: Some(Value::Distribution(part)), ..p.clone() });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Label, Value};

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
        let split = split("t", "req", points(5000, 100), MAX_MESSAGE_BYTES);
        assert!(split.messages.len() > 1);
        let mut seen = Vec::new();
        for (i, m) in split.messages.iter().enumerate() {
            assert!(m.len() <= MAX_MESSAGE_BYTES, "message {i} is {} bytes", m.len());
            let b = Batch::decode(m.as_slice()).unwrap();
            assert_eq!(b.tenant, "t");
            assert_eq!(b.batch_id, format!("req-{i}"));
            seen.extend(b.points.iter().map(|p| p.time_unix_nano));
        }
        assert_eq!(seen, (0..5000).collect::<Vec<u64>>());
        assert_eq!(split.oversized, 0);
    }

    #[test]
    fn points_larger_than_a_message_are_counted_not_sent() {
        let mut ps = points(2, 10);
        ps.extend(points(1, 200_000));
        let split = split("t", "r", ps, MAX_MESSAGE_BYTES);
        assert_eq!(split.oversized, 1);
        assert_eq!(split.messages.len(), 1);
        assert_eq!(Batch::decode(split.messages[0].as_slice()).unwrap().points.len(), 2);
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
        let split = split("t", "r", vec![p], MAX_MESSAGE_BYTES);
        assert!(split.messages.len() > 1);
        assert_eq!(split.oversized, 0);
        let parts: Vec<Distribution> = split
            .messages
            .iter()
            .flat_map(|m| Batch::decode(m.as_slice()).unwrap().points)
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
        let split = split("t", "r", ps, MAX_MESSAGE_BYTES);
        let batch = Batch::decode(split.messages[0].as_slice()).unwrap();
        assert_eq!(batch.shared_labels.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["a.service"]);
        assert!(batch.points.iter().all(|p| p.labels.len() == 2), "the labels that differ stay on the point");
        let rebuilt: Vec<Vec<Label>> = batch.points.iter().map(|p| batch.labels_of(p)).collect();
        assert_eq!(rebuilt, full);
    }

    #[test]
    fn no_points_no_messages() {
        assert!(split("t", "r", Vec::new(), MAX_MESSAGE_BYTES).messages.is_empty());
    }
}
