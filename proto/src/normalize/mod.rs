//! OTLP → [`Point`](crate::point::Point)s. Every data point either becomes a
//! point or is counted as rejected with a reason, which ingest reports to the
//! sender in `partial_success`.

mod labels;
pub mod metrics;

pub use labels::labels_from;

/// The outcome of normalizing one request.
#[derive(Debug, Default)]
pub struct Normalized {
    pub points: Vec<crate::point::Point>,
    /// Data points that could not be accepted.
    pub rejected: u64,
    /// The first few reasons, for the response's `error_message`.
    pub reasons: Vec<String>,
}

/// How many distinct reasons a response lists before it stops adding more.
const MAX_REASONS: usize = 5;

impl Normalized {
    fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.rejected += n;
        if self.reasons.len() < MAX_REASONS {
            let reason = reason();
            if !self.reasons.contains(&reason) {
                self.reasons.push(reason);
            }
        }
    }

    /// `error_message` for a partial success: the reasons, joined.
    pub fn error_message(&self) -> String {
        self.reasons.join("; ")
    }
}
