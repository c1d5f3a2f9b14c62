//! `opentelemetry/proto/resource/v1/resource.proto`.

use super::common::KeyValue;
use super::json::null_default;
use serde::Deserialize;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub attributes: Vec<KeyValue>,
}
