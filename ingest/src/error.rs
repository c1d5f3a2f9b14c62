//! Everything that stops an ingest request, and the one place that maps it to
//! an HTTP status and an OTLP `google.rpc.Status` body.

use crate::body::Encoding;
use proto::otlp::status::{code, Status};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No `Authorization: Bearer <key>` header, or a key no tenant owns.
    #[error("missing or unknown ingest key: send 'Authorization: Bearer <ingest key>'")]
    Unauthorized,
    /// A path that is not an OTLP/HTTP endpoint.
    #[error("no endpoint at {0}; OTLP/HTTP goes to POST /v1/metrics, /v1/traces or /v1/logs")]
    NotFound(String),
    /// A known endpoint asked with the wrong method.
    #[error("method {method} is not allowed on {path}; use POST")]
    MethodNotAllowed { method: String, path: String },
    /// A content type we cannot decode.
    #[error("unsupported content type {0:?}; use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// A content encoding we cannot decompress.
    #[error("unsupported content encoding {0:?}; use gzip, deflate or identity")]
    UnsupportedEncoding(String),
    /// The body is larger than the configured limit, as sent or once decompressed.
    #[error("request body is larger than {limit} bytes{}", if *.decompressed { " after decompression" } else { "" })]
    TooLarge { limit: u64, decompressed: bool },
    /// The body claims a compression it does not have, or is truncated.
    #[error("request body is not valid {encoding}: {reason}")]
    BadCompression { encoding: &'static str, reason: String },
    /// The body is not an OTLP export request.
    #[error(transparent)]
    Decode(#[from] proto::decode::DecodeError),
    /// A binding failed; the client should retry later.
    #[error("temporarily unable to accept data: {0}")]
    Unavailable(String),
    /// The deployment is misconfigured (a var or secret is missing or invalid).
    #[error("ingest is misconfigured: {0}")]
    Config(String),
}

impl IngestError {
    /// The HTTP status, per the OTLP/HTTP specification.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::Unauthorized => 401,
            IngestError::NotFound(_) => 404,
            IngestError::MethodNotAllowed { .. } => 405,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => 415,
            IngestError::TooLarge { .. } => 413,
            IngestError::BadCompression { .. } | IngestError::Decode(_) => 400,
            IngestError::Unavailable(_) => 503,
            IngestError::Config(_) => 500,
        }
    }

    fn rpc_code(&self) -> i32 {
        match self.status() {
            401 => code::UNAUTHENTICATED,
            404 => code::NOT_FOUND,
            405 => code::UNIMPLEMENTED,
            413 => code::RESOURCE_EXHAUSTED,
            503 => code::UNAVAILABLE,
            500 => code::INTERNAL,
            _ => code::INVALID_ARGUMENT,
        }
    }

    /// Extra headers the status calls for.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            IngestError::Unauthorized => vec![("WWW-Authenticate", "Bearer".into())],
            IngestError::MethodNotAllowed { .. } => vec![("Allow", "POST".into())],
            IngestError::Unavailable(_) => vec![("Retry-After", "5".into())],
            _ => Vec::new(),
        }
    }

    /// The `google.rpc.Status` body in the request's encoding.
    pub fn body(&self, encoding: Encoding) -> Vec<u8> {
        let status = Status { code: self.rpc_code(), message: self.to_string() };
        match encoding {
            Encoding::Protobuf => prost::Message::encode_to_vec(&status),
            Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message }).to_string().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_otlp_spec() {
        let cases: [(IngestError, u16); 7] = [
            (IngestError::Unauthorized, 401),
            (IngestError::NotFound("/x".into()), 404),
            (IngestError::MethodNotAllowed { method: "GET".into(), path: "/v1/metrics".into() }, 405),
            (IngestError::UnsupportedMediaType("text/html".into()), 415),
            (IngestError::TooLarge { limit: 10, decompressed: true }, 413),
            (IngestError::BadCompression { encoding: "gzip", reason: "x".into() }, 400),
            (IngestError::Unavailable("queue".into()), 503),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn bodies_are_rpc_status_in_the_request_encoding() {
        let err = IngestError::TooLarge { limit: 10, decompressed: true };
        let json: serde_json::Value = serde_json::from_slice(&err.body(Encoding::Json)).unwrap();
        assert_eq!(json["code"], code::RESOURCE_EXHAUSTED);
        assert_eq!(json["message"], "request body is larger than 10 bytes after decompression");
        let pb: Status = prost::Message::decode(err.body(Encoding::Protobuf).as_slice()).unwrap();
        assert_eq!(pb.message, json["message"]);
    }
}
