//! API keys: the format of the `INGEST_KEYS` and `READ_KEYS` secrets and the
//! lookup of a request's tenant.
//!
//! A secret holds a JSON object mapping each key to its tenant, for example
//! `{"dev-ingest-key":"dev"}`. The tenant comes only from the key, never from
//! the request, so a key can read or write nothing but its own tenant's data.

use std::collections::BTreeMap;

/// Keys and the tenants they belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys(BTreeMap<String, String>);

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The secret is not a JSON object of strings.
    #[error("key configuration must be a JSON object mapping key to tenant: {0}")]
    Invalid(#[from] serde_json::Error),
    /// An empty key or tenant would match requests that send none.
    #[error("key configuration has an empty key or tenant")]
    Empty,
}

impl Keys {
    pub fn parse(json: &str) -> Result<Keys, KeysError> {
        let map: BTreeMap<String, String> = serde_json::from_str(json)?;
        if map.iter().any(|(k, t)| k.is_empty() || t.is_empty()) {
            return Err(KeysError::Empty);
        }
        Ok(Keys(map))
    }

    /// The tenant owning `key`. Every configured key is compared in full so
    /// that the time taken does not reveal how much of a guess was right.
    pub fn tenant(&self, key: &str) -> Option<&str> {
        let mut found = None;
        for (k, tenant) in &self.0 {
            if constant_time_eq(k.as_bytes(), key.as_bytes()) {
                found = Some(tenant.as_str());
            }
        }
        found
    }
}

/// Whether `token` is `secret`, compared in constant time for tokens of
/// the secret's length: an operator key checked without a tenant map.
pub fn matches(secret: &str, token: &str) -> bool {
    !secret.is_empty() && constant_time_eq(secret.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The password of an `Authorization: Basic <base64(user:password)>`
/// header: Grafana's Prometheus data source sends a read key this way when it
/// is configured with basic auth (the user name is ignored).
pub fn basic_password(authorization: Option<&str>) -> Option<String> {
    let (scheme, encoded) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(crate::otlp::common::decode_base64(encoded.trim())?).ok()?;
    let (_user, password) = decoded.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// The key a request carries, as a bearer token or a basic-auth password.
pub fn request_key(authorization: Option<&str>) -> Option<String> {
    bearer(authorization).map(str::to_owned).or_else(|| basic_password(authorization))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_by_key() {
        let keys = Keys::parse(r#"{"k1":"a","k2":"b"}"#).unwrap();
        assert_eq!(keys.tenant("k1"), Some("a"));
        assert_eq!(keys.tenant("k2"), Some("b"));
        assert_eq!(keys.tenant("k"), None);
        assert_eq!(keys.tenant(""), None);
        assert!(Keys::parse(r#"{"":"a"}"#).is_err());
        assert!(Keys::parse(r#"["k"]"#).is_err());
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn basic_auth_passwords() {
        // base64("grafana:dev-read-key")
        let header = "Basic Z3JhZmFuYTpkZXYtcmVhZC1rZXk=";
        assert_eq!(basic_password(Some(header)).as_deref(), Some("dev-read-key"));
        assert_eq!(request_key(Some(header)).as_deref(), Some("dev-read-key"));
        assert_eq!(request_key(Some("Bearer k")).as_deref(), Some("k"));
        // base64("user:") has no password.
        assert_eq!(basic_password(Some("Basic dXNlcjo=")), None);
        assert_eq!(basic_password(Some("Basic !!!")), None);
        assert_eq!(request_key(None), None);
    }
}
