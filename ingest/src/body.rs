//! The transport half of decoding: which encoding a content type means, and
//! decompressing a body without ever inflating more than the limit.

use crate::error::IngestError;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use std::io::Read;

pub use proto::decode::Encoding;

/// The encoding a `Content-Type` names. JSON sent as `text/plain` is accepted
/// because that is what `navigator.sendBeacon` sends for a string.
pub fn encoding(content_type: Option<&str>) -> Result<Encoding, IngestError> {
    let raw = content_type.unwrap_or("");
    let media = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" | "text/plain" => Ok(Encoding::Json),
        _ => Err(IngestError::UnsupportedMediaType(raw.to_owned())),
    }
}

/// The encoding to answer in when the request's own is unknown or invalid:
/// protobuf if it asked for protobuf, JSON otherwise.
pub fn response_encoding(content_type: Option<&str>) -> Encoding {
    encoding(content_type).unwrap_or(Encoding::Json)
}

/// Size limits on request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted as sent (compressed or not).
    pub max_body_bytes: u64,
    /// Largest body accepted after decompression.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        // 4 MiB sent and 16 MiB inflated keep a decoded request comfortably
        // inside a Worker's 128 MB; OTLP exporters batch far below this.
        Limits { max_body_bytes: 4 << 20, max_decompressed_bytes: 16 << 20 }
    }
}

/// Rejects a body whose declared `Content-Length` is already over the limit,
/// before reading it.
pub fn check_declared_length(content_length: Option<&str>, limits: &Limits) -> Result<(), IngestError> {
    match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) if n > limits.max_body_bytes => Err(IngestError::TooLarge { limit: limits.max_body_bytes, decompressed: false }),
        _ => Ok(()),
    }
}

/// Decompresses `body` as its `Content-Encoding` says. Reading stops one byte
/// past the limit, so a compression bomb costs at most the limit to detect.
pub fn decompress(body: Vec<u8>, content_encoding: Option<&str>, limits: &Limits) -> Result<Vec<u8>, IngestError> {
    if body.len() as u64 > limits.max_body_bytes {
        return Err(IngestError::TooLarge { limit: limits.max_body_bytes, decompressed: false });
    }
    let coding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    match coding.as_str() {
        "" | "identity" => {
            if body.len() as u64 > limits.max_decompressed_bytes {
                return Err(IngestError::TooLarge { limit: limits.max_decompressed_bytes, decompressed: true });
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => inflate(MultiGzDecoder::new(body.as_slice()), "gzip", limits),
        // HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate.
        "deflate" => inflate(ZlibDecoder::new(body.as_slice()), "deflate", limits)
            .or_else(|_| inflate(DeflateDecoder::new(body.as_slice()), "deflate", limits)),
        other => Err(IngestError::UnsupportedEncoding(other.to_owned())),
    }
}

fn inflate(reader: impl Read, name: &'static str, limits: &Limits) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    reader
        .take(limits.max_decompressed_bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadCompression { encoding: name, reason: e.to_string() })?;
    if out.len() as u64 > limits.max_decompressed_bytes {
        return Err(IngestError::TooLarge { limit: limits.max_decompressed_bytes, decompressed: true });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, write::ZlibEncoder, Compression};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn content_types() {
        let cases = [
            (Some("application/x-protobuf"), Some(Encoding::Protobuf)),
            (Some("application/protobuf"), Some(Encoding::Protobuf)),
            (Some("application/json; charset=utf-8"), Some(Encoding::Json)),
            (Some("text/plain;charset=UTF-8"), Some(Encoding::Json)),
            (Some("Application/JSON"), Some(Encoding::Json)),
            (Some("text/html"), None),
            (None, None),
        ];
        for (ct, want) in cases {
            assert_eq!(encoding(ct).ok(), want, "{ct:?}");
        }
    }

    #[test]
    fn gzip_deflate_and_identity() {
        let data = b"{\"resourceMetrics\":[]}".to_vec();
        let l = Limits::default();
        assert_eq!(decompress(gzip(&data), Some("gzip"), &l).unwrap(), data);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&data).unwrap();
        assert_eq!(decompress(z.finish().unwrap(), Some("deflate"), &l).unwrap(), data);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&data).unwrap();
        assert_eq!(decompress(raw.finish().unwrap(), Some("deflate"), &l).unwrap(), data);
        assert_eq!(decompress(data.clone(), None, &l).unwrap(), data);
        // Concatenated gzip members are one valid gzip body.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(decompress(two, Some("gzip"), &l).unwrap(), b"abcd");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100_000);
        let l = Limits { max_body_bytes: 1 << 20, max_decompressed_bytes: 1 << 20 };
        match decompress(bomb, Some("gzip"), &l) {
            Err(IngestError::TooLarge { decompressed: true, limit }) => assert_eq!(limit, 1 << 20),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn size_and_encoding_errors() {
        let l = Limits { max_body_bytes: 10, max_decompressed_bytes: 20 };
        assert!(matches!(decompress(vec![0; 11], None, &l), Err(IngestError::TooLarge { decompressed: false, .. })));
        assert!(matches!(check_declared_length(Some("11"), &l), Err(IngestError::TooLarge { .. })));
        assert!(check_declared_length(Some("10"), &l).is_ok());
        assert!(matches!(decompress(b"nope".to_vec(), Some("gzip"), &l), Err(IngestError::BadCompression { .. })));
        assert!(matches!(decompress(b"x".to_vec(), Some("br"), &l), Err(IngestError::UnsupportedEncoding(_))));
        let l = Limits { max_body_bytes: 100, max_decompressed_bytes: 5 };
        assert!(matches!(decompress(vec![b'a'; 6], None, &l), Err(IngestError::TooLarge { decompressed: true, .. })));
    }
}
