//! The R2 archive format: what ingest puts on the queue, what the queue
//! consumer writes and what the rollup reads.
//!
//! An archive is a gzip file of one or more members. Their inflated content,
//! concatenated, is one protobuf [`Archive`] message:
//!
//! ```text
//! member 1: gzip( field 1: format version (varint)
//!                 field 2: Batch, repeated )
//! member 2: gzip( field 1: format version
//!                 field 2: Batch, repeated )
//! ...
//! ```
//!
//! Ingest compresses each queue message as one such member ([`encode`]), so
//! the consumer writes an archive by concatenating message bodies, without
//! inflating or compressing anything: gzip members concatenate, and so do
//! protobuf messages (repeated fields append; the version field repeats).
//!
//! Versions: 1 was a single member whose batches were queue messages
//! compressed by the consumer; 2 allows several members, each with its own
//! version field; 3 (today) adds a string table per batch
//! (`Batch.strings`) that points' labels refer to (`Point.label_refs`),
//! which [`decode`] resolves into plain labels. A reader takes the largest version field it finds
//! and refuses files newer than it knows: a version-1 reader, which stops
//! after the first member, refuses a version-2 file instead of silently
//! reading only part of it. A batch may carry `shared_labels` that all its
//! points have (batches without it have every label on the point). Fields
//! added later get new tags, which older readers skip, so today's files stay
//! readable.
//!
//! Keys are `archives/<13-digit unix ms>-<16 hex digits>.pb.gz`: lexicographic
//! order is time order, which lets the rollup list new archives from a cursor.

use crate::point::Batch;
use flate2::{read::MultiGzDecoder, write::GzEncoder, Compression};
use prost::Message;
use std::io::{Read, Write};

/// The version this code writes.
pub const FORMAT_VERSION: u32 = 3;

/// Where archives live in the bucket.
pub const KEY_PREFIX: &str = "archives/";

/// Where ingest's dead-letter consumer parks queue messages that could not
/// be archived, in the same bucket; the rollup's `/status` counts them.
pub const DEAD_LETTER_PREFIX: &str = "dead-letter/";

/// Archives are our own files, but a reader still refuses to inflate one
/// without bound.
const MAX_INFLATED: u64 = 256 << 20;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Archive {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(message, repeated, tag = "2")]
    pub batches: Vec<Batch>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The gzip stream is broken or truncated.
    #[error("archive is not valid gzip: {0}")]
    Gzip(#[from] std::io::Error),
    /// The inflated archive is larger than any archive we write.
    #[error("archive inflates to more than {MAX_INFLATED} bytes")]
    TooLarge,
    /// The file is larger than any archive the queue consumer writes.
    #[error("archive file of {0} bytes is larger than the {MAX_ARCHIVE_BYTES} an archive may have")]
    FileTooLarge(u64),
    /// One batch is larger than any batch ingest writes.
    #[error("archive holds a batch of {0} bytes, more than the {MAX_BATCH_BYTES} a batch may have")]
    BatchTooLarge(u64),
    /// The protobuf inside is broken.
    #[error("archive content is not a valid Archive message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A point refers to a label string its batch does not have.
    #[error("archive has a bad label reference: {0}")]
    LabelRef(String),
    /// Written by a newer version of the pipeline than this reader knows.
    #[error("archive format version {0} is newer than the supported {FORMAT_VERSION}")]
    UnknownVersion(u32),
}

/// The uncompressed content of an archive member holding encoded
/// [`Batch`]es.
pub fn raw(batches: &[&[u8]]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(batches.iter().map(|b| b.len() + 6).sum::<usize>() + 2);
    // Field 1, varint: the format version.
    raw.push(0x08);
    prost::encoding::encode_varint(u64::from(FORMAT_VERSION), &mut raw);
    for b in batches {
        // Field 2, length-delimited: one Batch.
        raw.push(0x12);
        prost::encoding::encode_varint(b.len() as u64, &mut raw);
        raw.extend_from_slice(b);
    }
    raw
}

/// One archive member (itself a complete archive) holding encoded
/// [`Batch`]es. Compressed at the fastest level: this runs in the ingest
/// request, where CPU is billed, and the data (repeated names and labels)
/// still shrinks about tenfold.
pub fn encode(batches: &[&[u8]]) -> Vec<u8> {
    gzip(&raw(batches))
}

/// One gzip member of `raw`, at the fastest level.
fn gzip(raw: &[u8]) -> Vec<u8> {
    // Writing into a Vec cannot fail.
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 8), Compression::fast());
    let _ = gz.write_all(raw);
    gz.finish().unwrap_or_default()
}

/// Whether `bytes` start like a gzip member (as [`encode`] writes) rather
/// than an encoded [`Batch`] (which starts with field 1's tag, 0x0a).
pub fn is_member(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads an archive back whole: every member, the largest version field,
/// labels resolved. For tests and tools; the rollup reads with [`Reader`].
pub fn decode(gz: &[u8]) -> Result<Archive, ArchiveError> {
    let mut reader = Reader::new(gz);
    let mut archive = Archive::default();
    for batch in &mut reader {
        let mut batch = batch?;
        batch.resolve().map_err(ArchiveError::LabelRef)?;
        archive.batches.push(batch);
    }
    archive.version = reader.version();
    Ok(archive)
}

/// The largest archive file a reader accepts, compressed. The queue
/// consumer writes at most 100 messages of 128 KB (12.8 MB).
pub const MAX_ARCHIVE_BYTES: usize = 32 << 20;

/// The largest batch a reader accepts. Ingest writes batches of at most
/// 120 KB (a queue message), so anything larger is not ours; refusing it
/// bounds what one batch can make a reader hold.
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// The batches of an archive, one at a time, inflated as they are read:
/// a reader holds the compressed file, the inflater's window and one
/// batch, never the whole inflated archive (up to 256 MB). Batches come
/// with their labels unresolved ([`Batch::label_pairs`] reads them).
///
/// A member of a newer format version ends the reading with
/// [`ArchiveError::UnknownVersion`] where it starts; batches before it
/// have been yielded. (The rollup records every batch it applies, so an
/// archive it can only partly read is finished, without double counting,
/// by a newer rollup.)
pub struct Reader<'a> {
    inflated: std::io::Take<MultiGzDecoder<&'a [u8]>>,
    version: u32,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(gz: &'a [u8]) -> Reader<'a> {
        Reader { inflated: MultiGzDecoder::new(gz).take(MAX_INFLATED + 1), version: 0, done: false }
    }

    /// The largest version field read so far.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// One byte, or `None` at the end of the archive.
    fn byte(&mut self) -> Result<Option<u8>, ArchiveError> {
        let mut b = [0u8];
        loop {
            return match self.inflated.read(&mut b) {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(b[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// A varint; `None` at a clean end of the archive before its first byte.
    fn varint(&mut self) -> Result<Option<u64>, ArchiveError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(b) = self.byte()? else {
                return if i == 0 { Ok(None) } else { Err(prost::DecodeError::new("archive ends inside a varint").into()) };
            };
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(prost::DecodeError::new("invalid varint").into())
    }

    fn required_varint(&mut self) -> Result<u64, ArchiveError> {
        self.varint()?.ok_or_else(|| prost::DecodeError::new("archive ends inside a field").into())
    }

    /// Reads and drops `n` bytes.
    fn skip(&mut self, n: u64) -> Result<(), ArchiveError> {
        let skipped = std::io::copy(&mut (&mut self.inflated).take(n), &mut std::io::sink())?;
        if skipped < n {
            return Err(prost::DecodeError::new("archive ends inside a field").into());
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, ArchiveError> {
        loop {
            let Some(key) = self.varint()? else {
                if self.inflated.limit() == 0 {
                    return Err(ArchiveError::TooLarge);
                }
                return Ok(None);
            };
            let (tag, wire_type) = (key >> 3, key & 7);
            match (tag, wire_type) {
                (1, 0) => {
                    let version = self.required_varint()?;
                    if version > u64::from(FORMAT_VERSION) {
                        return Err(ArchiveError::UnknownVersion(version.min(u64::from(u32::MAX)) as u32));
                    }
                    self.version = self.version.max(version as u32);
                }
                (2, 2) => {
                    let len = self.required_varint()?;
                    if len > MAX_BATCH_BYTES as u64 {
                        return Err(ArchiveError::BatchTooLarge(len));
                    }
                    let mut buf = vec![0u8; len as usize];
                    self.inflated.read_exact(&mut buf).map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof if self.inflated.limit() == 0 => ArchiveError::TooLarge,
                        std::io::ErrorKind::UnexpectedEof => prost::DecodeError::new("batch longer than the archive").into(),
                        _ => e.into(),
                    })?;
                    return Ok(Some(Batch::decode(buf.as_slice())?));
                }
                (_, 0) => {
                    self.required_varint()?;
                }
                (_, 1) => self.skip(8)?,
                (_, 2) => {
                    let len = self.required_varint()?;
                    self.skip(len)?;
                }
                (_, 5) => self.skip(4)?,
                _ => return Err(prost::DecodeError::new(format!("unsupported wire type {wire_type} of field {tag}")).into()),
            }
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<Batch, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch().transpose();
        if !matches!(next, Some(Ok(_))) {
            // An error or the end: nothing follows.
            self.done = true;
        }
        next
    }
}

/// The key of an archive written at `unix_ms` holding the given queue
/// messages. The suffix is a hash of the message ids, so a batch that is
/// redelivered unchanged rewrites the same object instead of adding a copy.
pub fn key(unix_ms: u64, message_ids: &[&str]) -> String {
    let ids: Vec<&[u8]> = message_ids.iter().map(|id| id.as_bytes()).collect();
    // 64 of the hash's 128 bits: enough to tell apart batches written in
    // the same millisecond.
    let h = crate::hash::hash128(&ids) as u64;
    format!("{KEY_PREFIX}{unix_ms:013}-{h:016x}.pb.gz")
}

/// The write time (unix ms) encoded in an archive key.
pub fn key_time_ms(key: &str) -> Option<u64> {
    key.strip_prefix(KEY_PREFIX)?.get(..13)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{Point, Value};

    fn batch(tenant: &str, values: &[f64]) -> Vec<u8> {
        Batch {
            tenant: tenant.into(),
            batch_id: format!("{tenant}-{}", values.len()),
            points: values.iter().map(|&v| Point { metric: "m".into(), value: Some(Value::Gauge(v)), ..Default::default() }).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn concatenated_messages_round_trip() {
        let a = batch("a", &[1.0, 2.0]);
        let b = batch("b", &[3.0]);
        let archive = decode(&encode(&[&a, &b])).unwrap();
        assert_eq!(archive.version, FORMAT_VERSION);
        assert_eq!(archive.batches.len(), 2);
        assert_eq!(archive.batches[0].tenant, "a");
        assert_eq!(archive.batches[0].points.len(), 2);
        assert_eq!(archive.batches[1].points[0].value, Some(Value::Gauge(3.0)));
    }

    #[test]
    fn concatenated_members_are_one_archive() {
        let (a, b, c) = (batch("a", &[1.0]), batch("b", &[2.0, 3.0]), batch("c", &[4.0]));
        let mut file = encode(&[&a, &b]);
        file.extend(encode(&[&c]));
        assert!(is_member(&file) && !is_member(&a));
        let archive = decode(&file).unwrap();
        assert_eq!(archive.version, FORMAT_VERSION);
        let tenants: Vec<&str> = archive.batches.iter().map(|b| b.tenant.as_str()).collect();
        assert_eq!(tenants, ["a", "b", "c"]);
    }

    /// A version-2 file of two members, their content pinned as bytes.
    #[test]
    fn reads_a_pinned_version_2_archive() {
        let mut file = gzip(&[
            0x08, 0x02, // version 2
            0x12, 0x11, // one batch of 17 bytes
            0x0a, 0x01, b't', // tenant "t"
            0x12, 0x0c, // one point of 12 bytes
            0x0a, 0x01, b'm', // metric "m"
            0x29, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // gauge 1.0
        ]);
        file.extend(gzip(&[
            0x08, 0x02, // version 2
            0x12, 0x0a, // one batch of 10 bytes
            0x0a, 0x01, b'u', // tenant "u"
            0x22, 0x05, // one shared label of 5 bytes
            0x0a, 0x01, b'k', 0x12, 0x00, // k=""
        ]));
        let archive = decode(&file).unwrap();
        assert_eq!(archive.version, 2);
        assert_eq!(archive.batches.len(), 2);
        assert_eq!(archive.batches[0].points[0].value, Some(Value::Gauge(1.0)));
        assert_eq!((archive.batches[1].tenant.as_str(), archive.batches[1].shared_labels[0].key.as_str()), ("u", "k"));
    }

    /// A file written by version 1 of the format, pinned as bytes so that a
    /// later change to the writer cannot silently break reading old archives.
    #[test]
    fn reads_a_pinned_version_1_archive() {
        let v1: &[u8] = &[
            0x08, 0x01, // version 1
            0x12, 0x11, // one batch of 17 bytes
            0x0a, 0x01, b't', // tenant "t"
            0x12, 0x0c, // one point of 12 bytes
            0x0a, 0x01, b'm', // metric "m"
            0x29, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // gauge 1.0
        ];
        let archive = decode(&gzip(v1)).unwrap();
        assert_eq!(archive.batches[0].tenant, "t");
        assert_eq!(archive.batches[0].points[0].metric, "m");
        assert_eq!(archive.batches[0].points[0].value, Some(Value::Gauge(1.0)));
    }

    /// A version-3 batch whose point's labels are references into its
    /// string table, pinned as bytes.
    #[test]
    fn reads_a_pinned_version_3_archive_and_resolves_label_references() {
        let file = gzip(&[
            0x08, 0x03, // version 3
            0x12, 0x12, // one batch of 18 bytes
            0x0a, 0x01, b't', // tenant "t"
            0x12, 0x07, // one point of 7 bytes
            0x0a, 0x01, b'm', // metric "m"
            0x42, 0x02, 0x01, 0x00, // label refs (1, 0): key strings[1], value strings[0]
            0x2a, 0x01, b'v', // strings[0] = "v"
            0x2a, 0x01, b'k', // strings[1] = "k"
        ]);
        let archive = decode(&file).unwrap();
        let b = &archive.batches[0];
        assert_eq!(b.points[0].labels, [crate::point::Label { key: "k".into(), value: "v".into() }]);
        assert!(b.points[0].label_refs.is_empty() && b.strings.is_empty());

        let bad = |refs: Vec<u32>| {
            let batch =
                Batch { points: vec![Point { label_refs: refs, ..Default::default() }], strings: vec!["k".into()], ..Default::default() };
            decode(&encode(&[&batch.encode_to_vec()]))
        };
        assert!(bad(vec![0, 0]).is_ok());
        assert!(matches!(bad(vec![0, 1]), Err(ArchiveError::LabelRef(_))));
        assert!(matches!(bad(vec![0]), Err(ArchiveError::LabelRef(_))));
    }

    #[test]
    fn rejects_newer_versions_and_garbage() {
        // A newer member anywhere in the file makes it unreadable here.
        let mut file = encode(&[&batch("a", &[1.0])]);
        file.extend(gzip(&[0x08, 0x04]));
        assert!(matches!(decode(&file), Err(ArchiveError::UnknownVersion(4))));
        assert!(matches!(decode(b"not gzip"), Err(ArchiveError::Gzip(_))));
        let truncated = encode(&[&batch("a", &[1.0])]);
        assert!(decode(&truncated[..truncated.len() - 10]).is_err());
    }

    #[test]
    fn the_reader_yields_batches_one_at_a_time_within_bounds() {
        let (a, b) = (batch("a", &[1.0]), batch("b", &[2.0, 3.0]));
        let mut file = encode(&[&a]);
        file.extend(encode(&[&b]));
        let tenants: Vec<String> = Reader::new(&file).map(|b| b.unwrap().tenant).collect();
        assert_eq!(tenants, ["a", "b"]);
        // Unknown fields between batches are skipped, of every wire type.
        let mut raw = raw(&[&a]);
        raw.extend([0x18, 0x05, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2a, 0x02, 9, 9, 0x35, 1, 2, 3, 4]);
        raw.extend(&self::raw(&[&b])[2..]);
        let tenants: Vec<String> = Reader::new(&gzip(&raw)).map(|b| b.unwrap().tenant).collect();
        assert_eq!(tenants, ["a", "b"]);
        // A batch larger than any ingest writes is refused before it is read.
        let mut huge = vec![0x08, 0x03, 0x12];
        prost::encoding::encode_varint(MAX_BATCH_BYTES as u64 + 1, &mut huge);
        let got: Vec<_> = Reader::new(&gzip(&huge)).collect();
        assert!(matches!(got[..], [Err(ArchiveError::BatchTooLarge(_))]), "{got:?}");
        // A newer member stops the reading where it starts.
        let mut newer = encode(&[&a]);
        newer.extend(gzip(&[0x08, 0x04]));
        newer.extend(encode(&[&b]));
        let got: Vec<_> = Reader::new(&newer).collect();
        assert!(matches!(got[..], [Ok(_), Err(ArchiveError::UnknownVersion(4))]), "{got:?}");
    }

    #[test]
    fn keys_sort_by_time_and_are_stable() {
        let k1 = key(999, &["x"]);
        let k2 = key(1_700_000_000_000, &["x"]);
        assert!(k1 < k2);
        assert_eq!(k2, key(1_700_000_000_000, &["x"]));
        assert_ne!(k2, key(1_700_000_000_000, &["y"]));
        assert!(k2.starts_with("archives/1700000000000-"));
        // Pinned: the ledger keeps archive keys across deploys.
        assert_eq!(k2, "archives/1700000000000-17a3b7c0b866a0c8.pb.gz");
        assert_eq!(key_time_ms(&k2), Some(1_700_000_000_000));
        assert_eq!(key_time_ms("other/123"), None);
    }
}
