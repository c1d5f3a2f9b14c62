//! Helpers for the OTLP JSON mapping: 64-bit integers arrive as strings or as
//! numbers, and `null` stands for an absent field.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Reads a `u64` given as a JSON number or a decimal string.
pub fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(IntVisitor::<u64>(Default::default()))
}

/// Reads an `i64` given as a JSON number or a decimal string.
pub fn i64_any<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(IntVisitor::<i64>(Default::default()))
}

/// Reads a list of `u64`s, each a JSON number or a decimal string.
pub fn vec_u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    struct SeqVisitor;
    impl<'de> Visitor<'de> for SeqVisitor {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of unsigned integers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            #[derive(serde::Deserialize)]
            struct Item(#[serde(deserialize_with = "u64_any")] u64);
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(Item(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_any(SeqVisitor)
}

/// Reads a JSON number that may also be given as the strings `"NaN"`,
/// `"Infinity"` or `"-Infinity"`, as the protobuf JSON mapping allows.
pub fn f64_any<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct F64Visitor;
    impl Visitor<'_> for F64Visitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
            Ok(0.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => v.parse().map_err(|_| E::custom(format!("invalid number {v:?}"))),
            }
        }
    }
    d.deserialize_any(F64Visitor)
}

/// [`f64_any`] for optional fields.
pub fn opt_f64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    f64_any(d).map(Some)
}

/// [`i64_any`] for optional fields.
pub fn opt_i64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64_any(d).map(Some)
}

/// Reads a list of doubles, each as [`f64_any`] accepts it.
pub fn vec_f64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Item(#[serde(deserialize_with = "f64_any")] f64);
    let items: Option<Vec<Item>> = serde::Deserialize::deserialize(d)?;
    Ok(items.unwrap_or_default().into_iter().map(|Item(v)| v).collect())
}

/// `null` or absent becomes the type's default, as in protobuf.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a trace or span id: OTLP JSON spells them in hex, not base64.
pub fn hex_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s: Option<String> = Deserialize::deserialize(d)?;
    let s = s.unwrap_or_default();
    if !s.len().is_multiple_of(2) {
        return Err(de::Error::custom(format!("id {s:?} is not an even number of hex digits")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| de::Error::custom(format!("id {s:?} is not hex")))
        })
        .collect()
}

/// Reads an enum given as its number or, leniently, as its name from
/// `names` (index = value), as some encoders write them.
pub fn enum_any<'de, D: Deserializer<'de>>(d: D, names: &[&str]) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrName {
        Num(i64),
        Name(String),
        Null(()),
    }
    match NumOrName::deserialize(d)? {
        NumOrName::Num(n) => i32::try_from(n).map_err(|_| de::Error::custom(format!("enum value {n} out of range"))),
        NumOrName::Name(s) => {
            names.iter().position(|n| *n == s).map(|i| i as i32).ok_or_else(|| de::Error::custom(format!("unknown enum value {s:?}")))
        }
        NumOrName::Null(()) => Ok(0),
    }
}

use serde::Deserialize;

struct IntVisitor<T>(std::marker::PhantomData<T>);

impl<T> Visitor<'_> for IntVisitor<T>
where
    T: TryFrom<u64> + TryFrom<i64> + std::str::FromStr + Default,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, as a number or a decimal string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Some encoders write large integers in exponent form (1.7e18).
        if v.fract() == 0.0 && v.abs() < 1.8e19 {
            if v >= 0.0 {
                return self.visit_u64(v as u64);
            }
            return self.visit_i64(v as i64);
        }
        Err(E::custom(format!("{v} is not an integer")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|_| E::custom(format!("invalid integer {v:?}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "u64_any")]
        a: u64,
        #[serde(deserialize_with = "i64_any")]
        b: i64,
        #[serde(deserialize_with = "f64_any")]
        c: f64,
        #[serde(deserialize_with = "vec_u64_any")]
        d: Vec<u64>,
    }

    #[test]
    fn integers_as_strings_or_numbers() {
        let t: T = serde_json::from_str(r#"{"a":"18446744073709551615","b":-5,"c":"Infinity","d":["1",2]}"#).unwrap();
        assert_eq!(t.a, u64::MAX);
        assert_eq!(t.b, -5);
        assert!(t.c.is_infinite());
        assert_eq!(t.d, vec![1, 2]);
    }

    #[test]
    fn hex_ids() {
        #[derive(serde::Deserialize)]
        struct Id(#[serde(deserialize_with = "hex_bytes")] Vec<u8>);
        assert_eq!(serde_json::from_str::<Id>(r#""0aff""#).unwrap().0, vec![0x0a, 0xff]);
        assert_eq!(serde_json::from_str::<Id>(r#""""#).unwrap().0, Vec::<u8>::new());
        assert!(serde_json::from_str::<Id>(r#""abc""#).is_err());
        assert!(serde_json::from_str::<Id>(r#""zz""#).is_err());
        assert!(serde_json::from_str::<Id>(r#""ébc""#).is_err());
    }

    #[test]
    fn rejects_garbage_integers() {
        assert!(serde_json::from_str::<T>(r#"{"a":"x","b":1,"c":1,"d":[]}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":-1,"b":1,"c":1,"d":[]}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":1.5,"b":1,"c":1,"d":[]}"#).is_err());
    }
}
