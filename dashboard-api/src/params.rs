//! Request parameters of the Prometheus API: form-encoded, from the query
//! string (GET) or the body (POST).

use crate::error::ApiError;

/// Parameters in order; repeated names (`match[]`) keep every value.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Query string and form body together, as Prometheus reads them.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Params {
        let mut all: Vec<(String, String)> = Vec::new();
        for src in [query.map(str::as_bytes), form_body].into_iter().flatten() {
            all.extend(worker::url::form_urlencoded::parse(src).into_owned());
        }
        Params(all)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every parameter, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of a repeated parameter (`match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::BadData(format!("missing parameter {name:?}")))
    }

    /// A time parameter: unix seconds (fractions allowed) or RFC 3339;
    /// `default` when absent.
    pub fn time(&self, name: &str, default: f64) -> Result<f64, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(_) => self.required_time(name),
        }
    }

    /// A time parameter that must be given.
    pub fn required_time(&self, name: &str) -> Result<f64, ApiError> {
        let v = self.required(name)?;
        parse_time(v).ok_or_else(|| ApiError::BadData(format!("invalid parameter {name:?}: cannot parse {v:?} to a valid timestamp")))
    }
}

impl Params {
    /// A duration parameter (`step`): seconds (fractions allowed) or a
    /// Prometheus duration such as `15s` or `1h30m`.
    pub fn duration(&self, name: &str) -> Result<f64, ApiError> {
        let v = self.required(name)?;
        if let Ok(secs) = v.parse::<f64>() {
            return Ok(secs);
        }
        promql_parser::util::parse_duration(v)
            .map(|d| d.as_secs_f64())
            .map_err(|_| ApiError::BadData(format!("invalid parameter {name:?}: cannot parse {v:?} to a valid duration")))
    }
}

pub fn parse_time(v: &str) -> Option<f64> {
    if let Ok(secs) = v.parse::<f64>() {
        return secs.is_finite().then_some(secs);
    }
    let t = chrono::DateTime::parse_from_rfc3339(v).ok()?;
    Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_body() {
        let p = Params::parse(Some("query=up&time=4"), Some(b"match%5B%5D=a&match%5B%5D=b"));
        assert_eq!(p.get("query"), Some("up"));
        assert_eq!(p.time("time", 0.0).unwrap(), 4.0);
        assert_eq!(p.time("absent", 7.0).unwrap(), 7.0);
        assert_eq!(p.get("match[]"), Some("a"));
        assert_eq!(p.all("match[]"), ["a", "b"]);
        assert!(p.required("nope").is_err());
    }

    #[test]
    fn durations() {
        let p = Params::parse(Some("a=15&b=1m30s&c=soon&d=0.5"), None);
        assert_eq!(p.duration("a").unwrap(), 15.0);
        assert_eq!(p.duration("b").unwrap(), 90.0);
        assert_eq!(p.duration("d").unwrap(), 0.5);
        assert!(p.duration("c").unwrap_err().to_string().contains("valid duration"));
        assert!(p.duration("e").unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000.5));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_time("2023-11-14T22:13:20.250+00:00"), Some(1_700_000_000.25));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("NaN"), None);
    }
}
