//! `opentelemetry/proto/common/v1/common.proto`.

use super::json::null_default;
use serde::Deserialize;

/// A value of an attribute: one of the protobuf `oneof value` variants, or
/// nothing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

/// OTLP JSON spells a oneof as whichever of its fields is present. Reading it
/// through plain optional fields (rather than `serde(flatten)`) keeps errors
/// inside a variant visible instead of turning them into "absent".
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AnyValueJson {
    string_value: Option<String>,
    bool_value: Option<bool>,
    #[serde(deserialize_with = "super::json::opt_i64_any")]
    int_value: Option<i64>,
    #[serde(deserialize_with = "super::json::opt_f64_any")]
    double_value: Option<f64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    #[serde(deserialize_with = "opt_base64_bytes")]
    bytes_value: Option<Vec<u8>>,
}

/// How deeply attribute values (arrays and maps of values) may nest in
/// OTLP JSON. Each level is a few nested serde frames, so without a bound
/// of its own the stack, not the input, would set the limit. Protobuf is
/// bounded by prost's limit of 100 nested messages (two per level).
pub const MAX_VALUE_DEPTH: usize = 32;

thread_local! {
    /// AnyValues being deserialized, innermost last.
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AnyValue, D::Error> {
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DEPTH.with(|n| n.set(n.get() - 1));
            }
        }
        let depth = DEPTH.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        let _level = Level;
        if depth > MAX_VALUE_DEPTH {
            return Err(serde::de::Error::custom(format!("attribute value nested more than {MAX_VALUE_DEPTH} levels deep")));
        }
        AnyValueJson::deserialize(d).map(AnyValue::from)
    }
}

impl From<AnyValueJson> for AnyValue {
    fn from(j: AnyValueJson) -> AnyValue {
        use any_value::Value::*;
        let value = j
            .string_value
            .map(StringValue)
            .or(j.bool_value.map(BoolValue))
            .or(j.int_value.map(IntValue))
            .or(j.double_value.map(DoubleValue))
            .or(j.array_value.map(ArrayValue))
            .or(j.kvlist_value.map(KvlistValue))
            .or(j.bytes_value.map(BytesValue));
        AnyValue { value }
    }
}

pub mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes, tag = "7")]
        BytesValue(Vec<u8>),
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub values: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[prost(string, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    #[serde(deserialize_with = "null_default")]
    pub attributes: Vec<KeyValue>,
}

/// OTLP JSON carries `bytes` fields (other than trace and span ids) in base64.
fn opt_base64_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let s: Option<String> = Deserialize::deserialize(d)?;
    s.map(|s| decode_base64(&s).ok_or_else(|| serde::de::Error::custom("invalid base64 in bytesValue"))).transpose()
}

/// Standard or URL-safe base64, padding optional. Small enough to keep here
/// rather than pull a crate into every Worker for one rarely used field.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

impl AnyValue {
    /// The value as label text: strings as they are, numbers and booleans in
    /// their usual spelling, arrays and maps as compact JSON.
    pub fn to_label(&self) -> String {
        use any_value::Value::*;
        match &self.value {
            None => String::new(),
            Some(StringValue(s)) => s.clone(),
            Some(BoolValue(b)) => b.to_string(),
            Some(IntValue(i)) => i.to_string(),
            Some(DoubleValue(d)) => d.to_string(),
            Some(BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
            Some(ArrayValue(_)) | Some(KvlistValue(_)) => self.to_json().to_string(),
        }
    }

    /// [`AnyValue::to_label`], moving a string value instead of copying it.
    pub fn into_label(self) -> String {
        match self.value {
            Some(any_value::Value::StringValue(s)) => s,
            _ => self.to_label(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        use any_value::Value::*;
        match &self.value {
            None => serde_json::Value::Null,
            Some(StringValue(s)) => s.clone().into(),
            Some(BoolValue(b)) => (*b).into(),
            Some(IntValue(i)) => (*i).into(),
            Some(DoubleValue(d)) => (*d).into(),
            Some(BytesValue(_)) => self.to_label().into(),
            Some(ArrayValue(a)) => a.values.iter().map(AnyValue::to_json).collect(),
            Some(KvlistValue(kv)) => kv
                .values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(serde_json::Value::Null, AnyValue::to_json);
                    (kv.key.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_value_json_variants() {
        let cases = [
            (r#"{"stringValue":"a"}"#, "a"),
            (r#"{"intValue":"42"}"#, "42"),
            (r#"{"intValue":42}"#, "42"),
            (r#"{"boolValue":true}"#, "true"),
            (r#"{"doubleValue":1.5}"#, "1.5"),
            (r#"{"bytesValue":"AQI="}"#, "0102"),
            (r#"{"arrayValue":{"values":[{"intValue":1},{"stringValue":"x"}]}}"#, r#"[1,"x"]"#),
            (r#"{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}"#, r#"{"k":false}"#),
            (r#"{}"#, ""),
            (r#"{"unknownField":1}"#, ""),
        ];
        for (json, label) in cases {
            let v: AnyValue = serde_json::from_str(json).unwrap();
            assert_eq!(v.to_label(), label, "{json}");
        }
    }

    #[test]
    fn errors_inside_a_variant_are_errors() {
        for bad in [r#"{"intValue":"x"}"#, r#"{"bytesValue":"!"}"#, r#"{"arrayValue":{"values":[{"intValue":[]}]}}"#] {
            assert!(serde_json::from_str::<AnyValue>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_variants() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64("a b").is_none());
    }
}
