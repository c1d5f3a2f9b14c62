//! OTLP → [`Point`](crate::point::Point)s. Every data point either becomes a
//! point or is counted as rejected with a reason, which ingest reports to the
//! sender in `partial_success`.

pub mod labels;
pub mod logs;
pub mod metrics;
pub mod traces;

use crate::point::{merge_labels, Label, Point};

/// The outcome of normalizing one request.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The points, in groups that share labels.
    pub groups: Vec<Group>,
    /// Data points that could not be accepted.
    pub rejected: u64,
    /// The first few reasons, for the response's `error_message`.
    pub reasons: Vec<String>,
    /// Label values cut to the length limit (the points were kept).
    pub truncated: u64,
    /// Whether some point had no time and took the receive time: then
    /// the request is not its body alone, and sending the body again is a
    /// new observation rather than a retry (see ingest's `request_id`).
    pub took_now: bool,
}

/// How many distinct reasons a response lists before it stops adding more.
const MAX_REASONS: usize = 5;

/// Points that share labels, typically one scope's: the labels of its
/// resource and scope are built once, not copied into every point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// Sorted by key. A point's own label of the same key wins, as in
    /// [`Batch::shared_labels`](crate::point::Batch::shared_labels).
    pub labels: Vec<Label>,
    /// Points with their own labels only.
    pub points: Vec<Point>,
}

impl Normalized {
    /// Starts a group of points sharing `labels`; [`push`](Self::push) adds to it.
    fn group(&mut self, labels: Vec<Label>) {
        self.groups.push(Group { labels, points: Vec::new() });
    }

    /// Adds a point to the current group (one without shared labels if
    /// there is none yet).
    fn push(&mut self, p: Point) {
        if self.groups.is_empty() {
            self.group(Vec::new());
        }
        if let Some(g) = self.groups.last_mut() {
            g.points.push(p);
        }
    }

    /// How many points there are.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.points.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every point with its full label set, its group's and its own.
    pub fn points(&self) -> Vec<Point> {
        self.groups
            .iter()
            .flat_map(|g| g.points.iter().map(|p| Point { labels: merge_labels(&g.labels, &p.labels), ..p.clone() }))
            .collect()
    }

    /// [`point_time`], noting when a point took `now`.
    fn time(&mut self, t: u64, now: u64) -> Result<u64, String> {
        self.took_now |= t == 0;
        point_time(t, now)
    }

    fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.rejected += n;
        if self.reasons.len() < MAX_REASONS {
            let reason = reason();
            if !self.reasons.contains(&reason) {
                self.reasons.push(reason);
            }
        }
    }

    /// `error_message` for a partial success: the reasons, joined, and a
    /// warning about cut label values.
    pub fn error_message(&self) -> String {
        let mut parts = self.reasons.clone();
        if self.truncated > 0 {
            parts.push(format!("{} label values longer than {} bytes were cut", self.truncated, labels::MAX_VALUE_BYTES));
        }
        parts.join("; ")
    }
}

/// How far ahead of the receiving clock a timestamp may be (clock skew).
pub const MAX_FUTURE_NS: u64 = 3600 * 1_000_000_000;
/// How far behind it may be: the longest retention.
pub const MAX_PAST_NS: u64 = crate::retention::MAX_PAST_DAYS * 86_400 * 1_000_000_000;

/// A point's time: zero (unset) means `now`; times more than an hour ahead or
/// older than the longest retention are rejected.
pub fn point_time(t: u64, now: u64) -> Result<u64, String> {
    if t == 0 {
        return Ok(now);
    }
    if t > now.saturating_add(MAX_FUTURE_NS) {
        return Err(format!("timestamp {t} is more than an hour in the future"));
    }
    if t < now.saturating_sub(MAX_PAST_NS) {
        return Err(format!("timestamp {t} is older than the {}-day retention", crate::retention::MAX_PAST_DAYS));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(point_time(0, now), Ok(now));
        assert_eq!(point_time(now - 5, now), Ok(now - 5));
        assert!(point_time(now + MAX_FUTURE_NS + 1, now).unwrap_err().contains("future"));
        assert!(point_time(u64::MAX, now).is_err());
        assert!(point_time(1_000_000_000, now).unwrap_err().contains("retention"));
    }
}
