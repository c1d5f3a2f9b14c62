//! The normalized point: what every OTLP data point, span, log record and
//! beacon becomes, and what travels from ingest through the queue and the R2
//! archive to the rollup.
//!
//! Points are prost messages so that a queue message is just compressed
//! encoded [`Batch`]es, and an archive can be built by concatenating queue
//! messages without decoding them (see [`crate::archive`]).

/// The points of one ingest request, all of one tenant.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Batch {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(message, repeated, tag = "2")]
    pub points: Vec<Point>,
    /// Unique per ingest request, so that a batch delivered twice can be
    /// recognised however the queue regroups it.
    #[prost(string, tag = "3")]
    pub batch_id: String,
    /// Labels every point of the batch has (typically the resource's), sent
    /// once instead of with each point. Sorted by key; a point's own label of
    /// the same key wins. Batches without it (older archives) simply have
    /// every label on the point.
    #[prost(message, repeated, tag = "4")]
    pub shared_labels: Vec<Label>,
    /// The label keys and values its points' [`Point::label_refs`] point
    /// into, each once: label strings repeat from point to point, and a
    /// reference is a byte or two. Empty once [`resolve`](Self::resolve)d.
    #[prost(string, repeated, tag = "5")]
    pub strings: Vec<String>,
}

impl Batch {
    /// Turns every point's [`Point::label_refs`] into [`Point::labels`], so
    /// that readers see plain labels. Fails on a reference outside
    /// [`strings`](Self::strings) or an odd number of them.
    pub fn resolve(&mut self) -> Result<(), String> {
        if self.points.iter().all(|p| p.label_refs.is_empty()) {
            return Ok(());
        }
        let strings = std::mem::take(&mut self.strings);
        for p in &mut self.points {
            if p.label_refs.len() % 2 != 0 {
                return Err(format!("point of {} has an odd number of label references", p.metric));
            }
            let refs = std::mem::take(&mut p.label_refs);
            let string = |i: u32| {
                strings.get(i as usize).cloned().ok_or_else(|| format!("label reference {i} outside the batch's {} strings", strings.len()))
            };
            for pair in refs.chunks(2) {
                p.labels.push(Label { key: string(pair[0])?, value: string(pair[1])? });
            }
            p.labels.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(())
    }

    /// A point's full label set: the batch's shared labels and its own.
    pub fn labels_of(&self, p: &Point) -> Vec<Label> {
        merge_labels(&self.shared_labels, &p.labels)
    }

    /// A point's full label set as borrowed pairs, sorted by key, read
    /// through its [`Point::label_refs`] (or its `labels`, in batches
    /// written without a string table) without copying a string; on equal
    /// keys its own label wins over a shared one. Fails on a reference
    /// outside [`strings`](Self::strings) or an odd number of them.
    pub fn label_pairs<'a>(&'a self, p: &'a Point) -> Result<Vec<(&'a str, &'a str)>, String> {
        let mut own: Vec<(&str, &str)> = Vec::with_capacity(p.labels.len() + p.label_refs.len() / 2);
        if !p.label_refs.len().is_multiple_of(2) {
            return Err(format!("point of {} has an odd number of label references", p.metric));
        }
        let string = |i: u32| {
            self.strings
                .get(i as usize)
                .map(String::as_str)
                .ok_or_else(|| format!("label reference {i} outside the batch's {} strings", self.strings.len()))
        };
        for pair in p.label_refs.chunks(2) {
            own.push((string(pair[0])?, string(pair[1])?));
        }
        own.extend(p.labels.iter().map(|l| (l.key.as_str(), l.value.as_str())));
        own.sort_by(|a, b| a.0.cmp(b.0));
        if self.shared_labels.is_empty() {
            return Ok(own);
        }
        let mut out = Vec::with_capacity(self.shared_labels.len() + own.len());
        let mut shared = self.shared_labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).peekable();
        for o in own {
            while let Some(s) = shared.next_if(|s| s.0 < o.0) {
                out.push(s);
            }
            shared.next_if(|s| s.0 == o.0);
            out.push(o);
        }
        out.extend(shared);
        Ok(out)
    }
}

/// Two label lists sorted by key, merged and still sorted; on equal keys
/// `own` wins.
pub fn merge_labels(shared: &[Label], own: &[Label]) -> Vec<Label> {
    if shared.is_empty() {
        return own.to_vec();
    }
    let mut out = Vec::with_capacity(shared.len() + own.len());
    let (mut i, mut j) = (0, 0);
    while i < shared.len() || j < own.len() {
        match (shared.get(i), own.get(j)) {
            (Some(a), Some(b)) if a.key == b.key => {
                out.push(b.clone());
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.key < b.key => {
                out.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                out.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                out.push(a.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// One observation of one series at one time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Point {
    /// The OpenTelemetry metric name, dots and all (`http.server.duration`).
    #[prost(string, tag = "1")]
    pub metric: String,
    /// Sorted by key, keys unique.
    #[prost(message, repeated, tag = "2")]
    pub labels: Vec<Label>,
    /// UCUM unit as the sender gave it (`ms`, `s`, `By`, `1`, or empty).
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(fixed64, tag = "4")]
    pub time_unix_nano: u64,
    #[prost(oneof = "Value", tags = "5, 6, 7")]
    pub value: Option<Value>,
    /// Labels as (key, value) pairs of indexes into the batch's
    /// [`Batch::strings`], instead of `labels` (archive format 3). Readers of
    /// archives see them resolved into `labels`.
    #[prost(uint32, repeated, tag = "8")]
    pub label_refs: Vec<u32>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// One sample of a gauge.
    #[prost(double, tag = "5")]
    Gauge(f64),
    /// The increase of a counter over the point's interval.
    #[prost(message, tag = "6")]
    Counter(Counter),
    /// A batch of samples of a distribution (latencies, sizes).
    #[prost(message, tag = "7")]
    Distribution(Distribution),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    /// The increase over the point's interval (delta), or the running total
    /// since `start_time_unix_nano` (cumulative).
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(bool, tag = "2")]
    pub monotonic: bool,
    /// Cumulative points are turned into deltas by the rollup, which keeps the
    /// previous point of each series (see `rollup::cumulative`).
    #[prost(bool, tag = "3")]
    pub cumulative: bool,
    #[prost(fixed64, tag = "4")]
    pub start_time_unix_nano: u64,
}

/// Samples as (value, count) pairs: exact values for spans and beacons, one
/// representative value per bucket for OTLP histograms.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Distribution {
    /// Number of samples, which may exceed the sum of `counts` when the sender
    /// gave a count without buckets.
    #[prost(uint64, tag = "1")]
    pub count: u64,
    #[prost(double, tag = "2")]
    pub sum: f64,
    #[prost(double, optional, tag = "3")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub max: Option<f64>,
    #[prost(double, repeated, tag = "5")]
    pub values: Vec<f64>,
    #[prost(uint64, repeated, tag = "6")]
    pub counts: Vec<u64>,
    /// As for [`Counter`]: counts and sum since `start_time_unix_nano`.
    /// Cumulative distributions carry no min and max (lifetime extremes say
    /// nothing of an interval), and their representative values depend on the
    /// bucket layout only, so that successive points subtract bucket by bucket.
    #[prost(bool, tag = "7")]
    pub cumulative: bool,
    #[prost(fixed64, tag = "8")]
    pub start_time_unix_nano: u64,
    /// The scale of an OTLP exponential histogram, whose representative
    /// values are `±base^(index + 0.5)` with `base = 2^(2^-scale)` (0 for
    /// the zero bucket); `None` for other distributions. Senders lower the
    /// scale within one cumulative stream when values spread out, and the
    /// rollup needs it to subtract successive points across the change.
    #[prost(sint32, optional, tag = "9")]
    pub exponential_scale: Option<i32>,
}

impl Point {
    /// The series' kind as the catalog stores it.
    pub fn kind(&self) -> Kind {
        match self.value {
            Some(Value::Counter(_)) => Kind::Counter,
            Some(Value::Distribution(_)) => Kind::Distribution,
            Some(Value::Gauge(_)) | None => Kind::Gauge,
        }
    }
}

/// What a series measures, which decides how dashboard-api exposes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Gauge,
    Counter,
    Distribution,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Distribution => "distribution",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "gauge" => Some(Kind::Gauge),
            "counter" => Some(Kind::Counter),
            "distribution" => Some(Kind::Distribution),
            _ => None,
        }
    }
}

/// Labels as canonical JSON (an object with sorted keys): the series key the
/// catalog stores and dashboard-api matches on.
pub fn labels_json(labels: &[Label]) -> String {
    let pairs: Vec<(&str, &str)> = labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect();
    pairs_json(&pairs)
}

/// [`labels_json`] of borrowed (key, value) pairs sorted by key, with
/// unique keys: `{"k":"v",…}`, strings escaped as serde_json escapes them.
pub fn pairs_json(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(2 + pairs.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>());
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Serializing a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(k: &str, v: &str) -> Label {
        Label { key: k.into(), value: v.into() }
    }

    #[test]
    fn label_pairs_merge_shared_and_referenced_labels_without_copying() {
        let b = Batch {
            shared_labels: vec![l("a", "1"), l("c", "3"), l("e", "5")],
            strings: vec!["c".into(), "own".into(), "b".into(), "x".into()],
            points: vec![
                Point { label_refs: vec![0, 1, 2, 3], ..Default::default() },
                Point { labels: vec![l("z", "9")], ..Default::default() },
            ],
            ..Default::default()
        };
        assert_eq!(b.label_pairs(&b.points[0]).unwrap(), [("a", "1"), ("b", "x"), ("c", "own"), ("e", "5")]);
        assert_eq!(b.label_pairs(&b.points[1]).unwrap(), [("a", "1"), ("c", "3"), ("e", "5"), ("z", "9")]);
        // The same set as resolving and merging gives.
        let mut resolved = b.clone();
        resolved.resolve().unwrap();
        let merged = resolved.labels_of(&resolved.points[0]);
        let pairs: Vec<(&str, &str)> = merged.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect();
        assert_eq!(b.label_pairs(&b.points[0]).unwrap(), pairs);
        assert_eq!(pairs_json(&pairs), labels_json(&merged));
        let bad = Point { label_refs: vec![0, 9], ..Default::default() };
        assert!(b.label_pairs(&bad).is_err());
        assert!(b.label_pairs(&Point { label_refs: vec![0], ..Default::default() }).is_err());
    }

    #[test]
    fn label_json_is_canonical_and_escaped() {
        let labels = [l("a\"b", "x\ny"), l("k", "é\u{1}")];
        let json = labels_json(&labels);
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["a\"b"], "x\ny");
        // Pinned: the catalog stores exactly this text, and series hashes
        // are taken over it.
        assert_eq!(json, r#"{"a\"b":"x\ny","k":"é\u0001"}"#);
        assert_eq!(labels_json(&[]), "{}");
    }

    #[test]
    fn merged_labels_stay_sorted_and_own_labels_win() {
        let shared = [l("a", "1"), l("c", "3"), l("e", "5")];
        let own = [l("b", "x"), l("c", "own"), l("f", "y")];
        assert_eq!(merge_labels(&shared, &own), [l("a", "1"), l("b", "x"), l("c", "own"), l("e", "5"), l("f", "y")]);
        assert_eq!(merge_labels(&[], &own), own);
        assert_eq!(merge_labels(&shared, &[]), shared);
    }
}
