//! The D1 row of an aggregate (table `aggregates`, see `migrations/`): how
//! the rollup writes an [`Aggregate`] and dashboard-api reads it back.
//!
//! Numbers are stored as SQLite REAL or INTEGER within ±2^53, because the
//! Workers runtime passes them through JavaScript numbers: the last value's
//! time is kept in milliseconds for that reason.

use super::{Aggregate, AggregateError, Samples};
use serde::Deserialize;

/// Columns of `aggregates` that hold the aggregate itself.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Row {
    pub count: f64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub last: f64,
    pub last_time_ms: f64,
    /// [`Samples::encode`]; absent for counters.
    #[serde(default, deserialize_with = "blob")]
    pub samples: Option<Vec<u8>>,
}

/// A BLOB column as the runtime hands it over: an array of byte values or
/// an `ArrayBuffer`, depending on the driver.
pub fn blob<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    struct Blob;
    impl<'de> serde::de::Visitor<'de> for Blob {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes, an array of bytes, or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Blob)
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Some(v.to_vec()))
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(Blob)
}

impl Aggregate {
    pub fn to_row(&self) -> Row {
        Row {
            count: self.count as f64,
            sum: self.sum.value(),
            min: self.min,
            max: self.max,
            last: self.last,
            last_time_ms: (self.last_time_unix_nano / 1_000_000) as f64,
            samples: self.samples.as_ref().map(Samples::encode),
        }
    }

    pub fn from_row(row: &Row) -> Result<Aggregate, AggregateError> {
        if !(row.count >= 0.0 && row.count.fract() == 0.0) {
            return Err(AggregateError::Corrupt(format!("count {}", row.count)));
        }
        Ok(Aggregate {
            count: row.count as u64,
            sum: crate::sum::Sum::of(row.sum),
            min: row.min,
            max: row.max,
            last: row.last,
            last_time_unix_nano: (row.last_time_ms.max(0.0) as u64).saturating_mul(1_000_000),
            samples: row.samples.as_deref().map(Samples::decode).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{Point, Value};

    #[test]
    fn rows_round_trip() {
        let mut a = Aggregate::empty(true, "ms");
        for (i, v) in [3.0, -1.0, 250.5].into_iter().enumerate() {
            a.add_point(&Point {
                time_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
                value: Some(Value::Gauge(v)),
                ..Default::default()
            });
        }
        let row = a.to_row();
        let back = Aggregate::from_row(&row).unwrap();
        assert_eq!(back.to_row(), row);
        assert_eq!(back.samples, a.samples);
        assert_eq!(back.last, 250.5);
        assert!(Aggregate::from_row(&Row { count: -1.0, ..Default::default() }).is_err());
        assert!(Aggregate::from_row(&Row { samples: Some(vec![7]), ..Default::default() }).is_err());
    }

    #[test]
    fn blobs_arrive_as_arrays_or_null() {
        let row: Row = serde_json::from_str(r#"{"count":1,"sum":1,"min":null,"max":1,"last":1,"last_time_ms":5,"samples":[1,2]}"#).unwrap();
        assert_eq!(row.samples, Some(vec![1, 2]));
        let row: Row = serde_json::from_str(r#"{"count":1,"sum":1,"last":1,"last_time_ms":5,"samples":null}"#).unwrap();
        assert_eq!((row.samples, row.min), (None, None));
    }
}
