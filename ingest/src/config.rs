//! Settings from the Worker's vars and secrets, parsed by plain functions so
//! that defaults and errors are tested natively.

use crate::body::Limits;
use crate::error::IngestError;
use proto::keys::Keys;

/// Names of the vars and secrets, as in `wrangler.toml`.
pub const INGEST_KEYS: &str = "INGEST_KEYS";
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const MAX_DECOMPRESSED_BYTES: &str = "MAX_DECOMPRESSED_BYTES";

/// One request in how many writes Analytics Engine data points.
pub const ANALYTICS_ONE_IN: &str = "ANALYTICS_ONE_IN";

/// `ANALYTICS_ONE_IN`, or [`crate::analytics::DEFAULT_ONE_IN`] if unset.
pub fn analytics_one_in(var: Option<String>) -> Result<u32, IngestError> {
    match var {
        None => Ok(crate::analytics::DEFAULT_ONE_IN),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(IngestError::Config(format!("{ANALYTICS_ONE_IN} must be a whole number of requests, 1 or more, not {v:?}"))),
        },
    }
}

/// Body limits from vars; an unset var keeps its default.
pub fn limits(var: impl Fn(&str) -> Option<String>) -> Result<Limits, IngestError> {
    let mut limits = Limits::default();
    for (name, slot) in [(MAX_BODY_BYTES, &mut limits.max_body_bytes), (MAX_DECOMPRESSED_BYTES, &mut limits.max_decompressed_bytes)] {
        if let Some(v) = var(name) {
            *slot = v.trim().parse().map_err(|_| IngestError::Config(format!("{name} must be a number of bytes, not {v:?}")))?;
        }
    }
    Ok(limits)
}

/// The ingest keys from the `INGEST_KEYS` secret.
pub fn keys(secret: Option<String>) -> Result<Keys, IngestError> {
    let json = secret.ok_or_else(|| IngestError::Config(format!("{INGEST_KEYS} is not set")))?;
    Keys::parse(&json).map_err(|e| IngestError::Config(format!("{INGEST_KEYS}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(limits(|_| None).unwrap(), Limits::default());
        let l = limits(|n| (n == MAX_BODY_BYTES).then(|| "100".to_string())).unwrap();
        assert_eq!(l.max_body_bytes, 100);
        assert_eq!(l.max_decompressed_bytes, Limits::default().max_decompressed_bytes);
        assert!(limits(|_| Some("lots".into())).is_err());
    }

    #[test]
    fn analytics_sampling_defaults_and_must_be_a_positive_count() {
        assert_eq!(analytics_one_in(None).unwrap(), crate::analytics::DEFAULT_ONE_IN);
        assert_eq!(analytics_one_in(Some(" 1 ".into())).unwrap(), 1);
        for bad in ["0", "-3", "0.5", "ten"] {
            assert!(analytics_one_in(Some(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_must_be_configured() {
        assert!(keys(None).is_err());
        assert!(keys(Some("nope".into())).is_err());
        assert_eq!(keys(Some(r#"{"k":"t"}"#.into())).unwrap().tenant("k"), Some("t"));
    }
}
