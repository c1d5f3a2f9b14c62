//! OTLP messages we decode, written by hand from the OpenTelemetry
//! specification's `.proto` field numbers.
//!
//! Why hand-written prost derives rather than generated code: each type derives
//! both `prost::Message` (the protobuf wire format) and `serde::Deserialize`
//! (the OTLP JSON mapping), so the two encodings decode into the very same types;
//! and the build needs neither `protoc` nor a `build.rs` code generator. Only the
//! fields we read are declared: protobuf and OTLP JSON both skip unknown fields.

pub mod common;
pub mod json;
pub mod logs;
pub mod metrics;
pub mod resource;
pub mod status;
pub mod trace;
