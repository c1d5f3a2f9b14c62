//! Errors of the Prometheus API, and the one place that maps them to HTTP
//! statuses and Prometheus' error envelope.

/// An API error, named after Prometheus' `errorType`s.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something unsupported.
    #[error("{0}")]
    BadData(String),
    /// The query was valid but could not be evaluated.
    #[error("{0}")]
    Execution(String),
    /// A request body larger than the given bytes.
    #[error("request body larger than {0} bytes: send the query's parameters in fewer bytes")]
    TooLarge(usize),
    /// No valid read key.
    #[error("missing or unknown read key: send 'Authorization: Bearer <read key>'")]
    Unauthorized,
    /// No such endpoint.
    #[error("no endpoint at {0}")]
    NotFound(String),
    /// The store could not be read; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A var or secret is missing or invalid.
    #[error("dashboard-api is misconfigured: {0}")]
    Config(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadData(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::TooLarge(_) => 413,
            ApiError::NotFound(_) => 404,
            ApiError::Execution(_) => 422,
            ApiError::Unavailable(_) => 503,
            ApiError::Config(_) => 500,
        }
    }

    /// Prometheus' `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadData(_) | ApiError::TooLarge(_) => "bad_data",
            ApiError::Execution(_) => "execution",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Config(_) => "internal",
        }
    }

    /// `{"status":"error","errorType":…,"error":…}`
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "status": "error", "errorType": self.error_type(), "error": self.to_string() })
    }

    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            ApiError::Unauthorized => vec![("WWW-Authenticate", "Bearer realm=\"dashboard-api\"")],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_statuses() {
        let e = ApiError::BadData("unsupported: subquery".into());
        assert_eq!(e.status(), 400);
        assert_eq!(e.body(), serde_json::json!({"status":"error","errorType":"bad_data","error":"unsupported: subquery"}));
        assert_eq!(ApiError::Execution("x".into()).status(), 422);
        assert_eq!(ApiError::Unauthorized.headers()[0].0, "WWW-Authenticate");
    }
}
