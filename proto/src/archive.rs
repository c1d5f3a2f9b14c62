//! The R2 archive format: what the queue consumer writes and the rollup reads.
//!
//! An archive is a gzip stream of one protobuf [`Archive`] message:
//!
//! ```text
//! gzip( field 1: format version (varint)
//!       field 2: Batch, repeated — each exactly the bytes of one queue message )
//! ```
//!
//! Because repeated protobuf fields concatenate, the consumer builds an archive
//! from queue messages without decoding them. A batch may carry
//! `shared_labels` that all its points have (added after the first archives;
//! batches without it have every label on the point). Readers accept every version up
//! to [`FORMAT_VERSION`]; fields added later get new tags, which older readers
//! skip, so today's files stay readable.
//!
//! Keys are `archives/<13-digit unix ms>-<16 hex digits>.pb.gz`: lexicographic
//! order is time order, which lets the rollup list new archives from a cursor.

use crate::point::Batch;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use prost::Message;
use std::io::{Read, Write};

/// The version this code writes.
pub const FORMAT_VERSION: u32 = 1;

/// Where archives live in the bucket.
pub const KEY_PREFIX: &str = "archives/";

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
    /// The protobuf inside is broken.
    #[error("archive content is not a valid Archive message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Written by a newer version of the pipeline than this reader knows.
    #[error("archive format version {0} is newer than the supported {FORMAT_VERSION}")]
    UnknownVersion(u32),
}

/// The uncompressed content of an archive holding encoded [`Batch`]es
/// (queue message bodies); an archive file is this, gzip-compressed.
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

/// Builds a gzip archive from encoded [`Batch`]es. (The Worker compresses
/// [`raw`] with the runtime's native gzip instead; both are plain gzip.)
pub fn encode(batches: &[&[u8]]) -> Vec<u8> {
    let raw = raw(batches);
    // Writing into a Vec cannot fail.
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::fast());
    let _ = gz.write_all(&raw);
    gz.finish().unwrap_or_default()
}

/// Reads an archive back.
pub fn decode(gz: &[u8]) -> Result<Archive, ArchiveError> {
    let mut raw = Vec::new();
    GzDecoder::new(gz).take(MAX_INFLATED + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 > MAX_INFLATED {
        return Err(ArchiveError::TooLarge);
    }
    let archive = Archive::decode(raw.as_slice())?;
    if archive.version > FORMAT_VERSION {
        return Err(ArchiveError::UnknownVersion(archive.version));
    }
    Ok(archive)
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
            points: values
                .iter()
                .map(|&v| Point { metric: "m".into(), value: Some(Value::Gauge(v)), ..Default::default() })
                .collect(),
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
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(v1).unwrap();
        let archive = decode(&gz.finish().unwrap()).unwrap();
        assert_eq!(archive.batches[0].tenant, "t");
        assert_eq!(archive.batches[0].points[0].metric, "m");
        assert_eq!(archive.batches[0].points[0].value, Some(Value::Gauge(1.0)));
    }

    #[test]
    fn rejects_newer_versions_and_garbage() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&[0x08, 0x02]).unwrap();
        assert!(matches!(decode(&gz.finish().unwrap()), Err(ArchiveError::UnknownVersion(2))));
        assert!(matches!(decode(b"not gzip"), Err(ArchiveError::Gzip(_))));
        let truncated = encode(&[&batch("a", &[1.0])]);
        assert!(decode(&truncated[..truncated.len() - 10]).is_err());
    }

    #[test]
    fn keys_sort_by_time_and_are_stable() {
        let k1 = key(999, &["x"]);
        let k2 = key(1_700_000_000_000, &["x"]);
        assert!(k1 < k2);
        assert_eq!(k2, key(1_700_000_000_000, &["x"]));
        assert_ne!(k2, key(1_700_000_000_000, &["y"]));
        assert!(k2.starts_with("archives/1700000000000-"));
        assert_eq!(key_time_ms(&k2), Some(1_700_000_000_000));
        assert_eq!(key_time_ms("other/123"), None);
    }
}
