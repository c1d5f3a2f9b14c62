//! PromQL: parsed once with `promql-parser`, then evaluated in two steps so
//! that evaluation stays a pure function: [`select`] lists the data a query
//! needs, the Worker fetches it from D1, and [`eval`] computes the result.

pub mod eval;
pub mod select;
pub mod series;

use crate::error::ApiError;
use promql_parser::parser::Expr;

/// Parses a PromQL expression; syntax errors are `bad_data`.
pub fn parse(query: &str) -> Result<Expr, ApiError> {
    promql_parser::parser::parse(query).map_err(|e| ApiError::BadData(format!("invalid query: {e}")))
}

/// Without a range selector or a step, a distribution's window at time t is
/// (t − 5m, t], like Prometheus' lookback.
pub const DEFAULT_WINDOW_S: f64 = 300.0;
