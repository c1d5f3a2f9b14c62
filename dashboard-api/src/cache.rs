//! Which responses may be cached, and under which key.
//!
//! A query response is cached (in the Cache API of the data centre that
//! served it) only if every bucket it read ended at least
//! [`CLOSED_AFTER_S`] ago: on-time data has been rolled up by then. Data
//! that arrives later still changes such buckets, so the key holds the
//! tenant's cache generation, which the rollup moves on in the same
//! transaction as any write into a bucket that old
//! ([`proto::aggregate::late_write`]). A response computed before a late
//! write is stored, at worst, under a generation no request asks for again.
//!
//! The key names the tenant in clear, not hashed, so two tenants can never
//! share an entry, and the build, so a deploy never serves an older
//! version's answers.

use crate::params::Params;
pub use proto::aggregate::CLOSED_AFTER_S;

/// How long a cached response is kept. Besides late data (handled by the
/// generation), retention can change an answer: past it, a range is read at
/// a coarser resolution. An hour bounds how long the finer answer is served.
pub const TTL_S: u32 = 3600;

/// Keys longer than this are not cached (the query text is in the key).
const MAX_KEY_BYTES: usize = 4096;

/// The endpoints whose responses may be cached, and the parameter holding
/// the time their data ends at. A request without that parameter means
/// "now", which is never closed.
const CACHEABLE: [(&str, &str); 3] = [("/api/v1/query", "time"), ("/api/v1/query_range", "end"), ("/api/v1/json/percentiles", "end")];

/// Whether a request may have a cached response: a query endpoint whose
/// named end lies at least [`CLOSED_AFTER_S`] before `now`. Whether its
/// response may be stored is decided after evaluation, by [`closed`] over
/// the buckets actually read.
pub fn candidate(path: &str, params: &Params, now: f64) -> bool {
    let Some((_, end)) = CACHEABLE.iter().find(|(p, _)| *p == path) else { return false };
    params.required_time(end).is_ok_and(|t| closed(t, now))
}

/// Whether data that ends at `until` (unix seconds) is closed at `now`.
pub fn closed(until: f64, now: f64) -> bool {
    until <= now - CLOSED_AFTER_S as f64
}

/// The cache key (a URL, as the Cache API wants) of a request's response:
/// tenant, generation, build, path and every parameter, sorted by name so
/// that the order of different parameters does not matter. The values of
/// a repeated name keep their order: evaluation reads the first
/// ([`Params::get`]), so `time=A&time=B` and `time=B&time=A` are different
/// requests. `None` if the key would be too long.
pub fn key(tenant: &str, generation: u64, path: &str, params: &Params) -> Option<String> {
    let mut pairs: Vec<(&str, &str)> = params.iter().collect();
    // Stable: equal names stay in the order they were given.
    pairs.sort_by_key(|(name, _)| *name);
    let query = worker::url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let tenant: String = worker::url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
    let key = format!("https://dashboard-api.cache/{tenant}/{generation}/{}{path}?{query}", env!("CARGO_PKG_VERSION"),);
    (key.len() <= MAX_KEY_BYTES).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::parse(Some(query), None)
    }

    #[test]
    fn only_query_endpoints_with_a_closed_end_are_candidates() {
        let now = 1_800_000_000.0;
        let at = |t: f64| format!("query=up&time={t}");
        assert!(candidate("/api/v1/query", &params(&at(now - 600.0)), now));
        assert!(!candidate("/api/v1/query", &params(&at(now - 599.0)), now));
        // No time: now, never closed.
        assert!(!candidate("/api/v1/query", &params("query=up"), now));
        assert!(!candidate("/api/v1/query", &params("query=up&time=yesterday"), now));
        let range = format!("query=up&start={}&end={}&step=60", now - 7200.0, now - 3600.0);
        assert!(candidate("/api/v1/query_range", &params(&range), now));
        let open = format!("query=up&start={}&end={}&step=60", now - 7200.0, now);
        assert!(!candidate("/api/v1/query_range", &params(&open), now));
        assert!(candidate("/api/v1/json/percentiles", &params(&format!("metric=m&end={}", now - 3600.0)), now));
        assert!(!candidate("/api/v1/json/percentiles", &params("metric=m"), now));
        // The catalog changes with every new series: never cached.
        assert!(!candidate("/api/v1/series", &params(&format!("match[]=up&end={}", now - 3600.0)), now));
    }

    #[test]
    fn keys_separate_tenants_and_generations_not_parameter_order() {
        let p = params("query=sum(up)&time=100");
        let k = key("acme", 3, "/api/v1/query", &p).unwrap();
        assert!(k.starts_with("https://dashboard-api.cache/acme/3/"), "{k}");
        assert!(k.ends_with("/api/v1/query?query=sum%28up%29&time=100"), "{k}");
        assert_eq!(k, key("acme", 3, "/api/v1/query", &params("time=100&query=sum(up)")).unwrap());
        // A repeated parameter is evaluated by its first value, so the
        // order of its values is part of the key.
        let (ab, ba) = (params("query=up&time=100&time=200"), params("query=up&time=200&time=100"));
        assert_eq!((ab.get("time"), ba.get("time")), (Some("100"), Some("200")));
        assert_ne!(key("acme", 3, "/api/v1/query", &ab), key("acme", 3, "/api/v1/query", &ba));
        assert_ne!(k, key("acme", 4, "/api/v1/query", &p).unwrap());
        assert_ne!(k, key("other", 3, "/api/v1/query", &p).unwrap());
        // A tenant name cannot reach into another tenant's path.
        let sneaky = key("acme/3/x", 3, "/api/v1/query", &p).unwrap();
        assert!(sneaky.starts_with("https://dashboard-api.cache/acme%2F3%2Fx/3/"), "{sneaky}");
        assert_ne!(k, key("acme", 3, "/api/v1/query_range", &p).unwrap());
        assert!(key("acme", 3, "/api/v1/query", &params(&format!("query={}", "x".repeat(5000)))).is_none());
    }
}
