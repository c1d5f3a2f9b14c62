//! An archive's batches in chunks of bounded size, read one after another
//! into the run's pending work.
//!
//! A delivery of 100 queue messages is an archive of up to 12.8 MB of gzip
//! that inflates to ten times that; applied whole, with every point's
//! labels copied out, it needed hundreds of megabytes, and a Worker has 128
//! MB. So the rollup reads an archive batch by batch ([`proto::archive::Reader`])
//! and applies it in chunks of at most [`MAX_CHUNK_WEIGHT`] points and
//! samples and [`MAX_CHUNK_BYTES`] encoded bytes (at least one batch).
//!
//! Every commit records the ids of the batches it applied, so a run that
//! stops within an archive (a budget, a crash) leaves it half applied but
//! never double counted: the next run reads it again and skips the batches
//! already recorded. The commit that holds an archive's last batch records
//! the archive.

use proto::archive::{ArchiveError, Reader};
use proto::point::{Batch, Value};
use std::iter::Peekable;

/// Points one chunk holds at most (a sample of a distribution weighs a
/// sixteenth of a point): a decoded point takes a few hundred bytes, a
/// sample 16, so a chunk is about 6 MB. A chunk is held while the run's
/// pending work commits; at 100,000 points (22 MB) it left a commit too
/// little room for a minute of 10,000 series. A delivery of 100 fixture
/// requests is four chunks. `tests/memory.rs` measures the bound.
pub const MAX_CHUNK_WEIGHT: u64 = 25_000;

/// Samples of a distribution that weigh as much as a point.
const SAMPLES_PER_POINT: u64 = 16;

/// Buckets (distinct series and minute, hour or day) one part of a chunk
/// reaches at most, give or take one batch's: a part is keyed and
/// accumulated on its own (about a kilobyte a bucket) before it is folded
/// into the run's pending work ([`crate::pending`]). A chunk whose points
/// reach more is read in several parts ([`crate::series::key_until`]).
pub const MAX_PART_BUCKETS: usize = 10_000;

/// Encoded batch bytes one chunk holds at most (each batch at most
/// [`proto::archive::MAX_BATCH_BYTES`]).
pub const MAX_CHUNK_BYTES: usize = 16 << 20;

/// What a batch weighs against [`MAX_CHUNK_WEIGHT`].
pub fn weight(b: &Batch) -> u64 {
    let samples: u64 = b
        .points
        .iter()
        .map(|p| match &p.value {
            Some(Value::Distribution(d)) => d.values.len() as u64,
            _ => 0,
        })
        .sum();
    b.points.len() as u64 + samples / SAMPLES_PER_POINT
}

/// One transaction's share of a chunk: consecutive batches, keyed.
pub struct Part<'a> {
    pub batches: &'a [Batch],
    pub keyed: crate::series::Keyed<'a>,
    /// Whether it ends the chunk.
    pub last: bool,
}

/// A chunk's batches in parts of at most [`MAX_PART_BUCKETS`] buckets
/// (give or take one batch's); one empty part for no batches.
pub fn parts(batches: &[Batch]) -> impl Iterator<Item = Part<'_>> {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let (keyed, taken) = crate::series::key_until(&batches[start..], MAX_PART_BUCKETS);
        let part = &batches[start..start + taken];
        start += taken;
        done = start == batches.len();
        Some(Part { batches: part, keyed, last: done })
    })
}

/// A run of consecutive batches of one archive.
#[derive(Debug)]
pub struct Chunk {
    pub batches: Vec<Batch>,
    /// Whether the archive ends after it.
    pub last: bool,
}

/// The chunks of an archive, read as they are needed.
pub struct Chunks<'a> {
    reader: Peekable<Reader<'a>>,
    done: bool,
}

impl<'a> Chunks<'a> {
    pub fn new(archive: &'a [u8]) -> Chunks<'a> {
        Chunks { reader: Reader::new(archive).peekable(), done: false }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (mut batches, mut weight_so_far, mut bytes) = (Vec::new(), 0, 0);
        loop {
            match self.reader.next() {
                None => break,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(b)) => {
                    weight_so_far += weight(&b);
                    bytes += prost::Message::encoded_len(&b);
                    batches.push(b);
                }
            }
            if weight_so_far >= MAX_CHUNK_WEIGHT || bytes >= MAX_CHUNK_BYTES {
                break;
            }
        }
        let last = self.reader.peek().is_none();
        self.done = last;
        Some(Ok(Chunk { batches, last }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use proto::point::{Distribution, Point};

    fn batch(id: usize, points: usize, samples: usize) -> Vec<u8> {
        let d = Distribution { count: samples as u64, values: vec![1.0; samples], counts: vec![1; samples], ..Default::default() };
        Batch {
            tenant: "t".into(),
            batch_id: format!("b{id}"),
            points: (0..points)
                .map(|_| Point { metric: "m".into(), value: Some(Value::Distribution(d.clone())), ..Default::default() })
                .collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn ids(chunks: Chunks<'_>) -> Vec<(Vec<String>, bool)> {
        chunks.map(|c| c.unwrap()).map(|c| (c.batches.into_iter().map(|b| b.batch_id).collect(), c.last)).collect()
    }

    #[test]
    fn chunks_stop_at_the_budget_and_the_last_one_says_so() {
        let small: Vec<Vec<u8>> = (0..3).map(|i| batch(i, 10, 0)).collect();
        let archive = proto::archive::encode(&small.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(ids(Chunks::new(&archive)), [(vec!["b0".to_string(), "b1".into(), "b2".into()], true)]);
        // Batches of 2,000 points of 10 samples weigh 3,250: a chunk of
        // 8 (26,000), then one.
        let heavy: Vec<Vec<u8>> = (0..9).map(|i| batch(i, 2_000, 10)).collect();
        let archive = proto::archive::encode(&heavy.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let first: Vec<String> = (0..8).map(|i| format!("b{i}")).collect();
        assert_eq!(ids(Chunks::new(&archive)), [(first, false), (vec!["b8".to_string()], true)]);
        // An empty archive is one empty, last chunk.
        let empty = proto::archive::encode(&[]);
        assert_eq!(ids(Chunks::new(&empty)), [(Vec::<String>::new(), true)]);
    }

    #[test]
    fn a_broken_tail_ends_the_chunks_with_the_error() {
        let good = batch(0, 1, 0);
        let mut archive = proto::archive::encode(&[&good]);
        archive.extend(b"\x1f\x8bnot really gzip");
        let got: Vec<_> = Chunks::new(&archive).collect();
        assert!(matches!(got[..], [Err(_)]), "{got:?}");
    }
}
