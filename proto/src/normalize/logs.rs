//! Log records → `logs.records`, a counter labelled with `service.name` and
//! `severity` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL` from the
//! severity number; the severity text when the number is unset;
//! `UNSPECIFIED` when both are). Records of one series in the same minute
//! become one point, which is exact at the finest stored resolution.

use super::traces::service_name;
use super::Normalized;
use crate::otlp::common::KeyValue;
use crate::otlp::logs::ExportLogsServiceRequest;
use crate::point::{Counter, Label, Point, Value};
use std::collections::BTreeMap;

pub const RECORDS: &str = "logs.records";

const SEVERITIES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn severity(number: i32, text: &str) -> String {
    match number {
        1..=24 => SEVERITIES[((number - 1) / 4) as usize].to_owned(),
        _ if !text.is_empty() => text.chars().take(32).collect::<String>().to_ascii_uppercase(),
        _ => "UNSPECIFIED".to_owned(),
    }
}

pub fn normalize(req: &ExportLogsServiceRequest, now_unix_nano: u64) -> Normalized {
    let mut out = Normalized::default();
    let mut groups: BTreeMap<(Vec<Label>, u64), (u64, u64)> = BTreeMap::new();
    for rl in &req.resource_logs {
        let resource: &[KeyValue] = rl.resource.as_ref().map_or(&[], |r| &r.attributes);
        let service = service_name(resource);
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let t = if rec.time_unix_nano != 0 { rec.time_unix_nano } else { rec.observed_time_unix_nano };
                let t = match out.time(t, now_unix_nano) {
                    Ok(t) => t,
                    Err(e) => {
                        out.reject(1, || format!("log record: {e}"));
                        continue;
                    }
                };
                let sev = severity(rec.severity_number, &rec.severity_text);
                let labeled = super::labels::fixed(&[("service.name", service), ("severity", &sev)]);
                out.truncated += labeled.truncated as u64;
                let g = groups.entry((labeled.labels, t / 60_000_000_000)).or_default();
                g.0 += 1;
                g.1 = g.1.max(t);
            }
        }
    }
    for ((labels, _), (count, latest)) in groups {
        out.push(Point {
            label_refs: Vec::new(),
            metric: RECORDS.into(),
            labels,
            unit: "1".into(),
            time_unix_nano: latest,
            value: Some(Value::Counter(Counter { value: count as f64, monotonic: true, ..Default::default() })),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, Encoding};

    const NOW: u64 = 1_800_000_000_000_000_000;

    #[test]
    fn records_are_counted_by_service_and_severity() {
        let t = NOW - 120_000_000_000;
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
              "scopeLogs":[{{"logRecords":[
                {{"timeUnixNano":"{t}","severityNumber":17}},
                {{"timeUnixNano":"{t}","severityNumber":"SEVERITY_NUMBER_ERROR3"}},
                {{"observedTimeUnixNano":"{t}","severityText":"notice"}},
                {{"timeUnixNano":"{t}"}},
                {{"timeUnixNano":"5"}}]}}]}}]}}"#
        );
        let n = normalize(&decode::logs(body.as_bytes(), Encoding::Json).unwrap(), NOW);
        assert_eq!(n.rejected, 1, "the record from 1970");
        let counts: Vec<(String, f64)> = n
            .points()
            .iter()
            .map(|p| {
                let sev = p.labels.iter().find(|l| l.key == "severity").unwrap().value.clone();
                let Some(Value::Counter(c)) = &p.value else { panic!() };
                (sev, c.value)
            })
            .collect();
        assert_eq!(counts, [("ERROR".to_string(), 2.0), ("NOTICE".to_string(), 1.0), ("UNSPECIFIED".to_string(), 1.0)]);
        assert!(n.points().iter().all(|p| p.labels.iter().any(|l| l.key == "service.name" && l.value == "api")));
    }

    #[test]
    fn a_long_service_name_is_cut_like_an_attribute_value() {
        let service = "s".repeat(5000);
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
              "scopeLogs":[{{"logRecords":[{{"severityNumber":9}},{{"severityNumber":9}}]}}]}}]}}"#
        );
        let n = normalize(&decode::logs(body.as_bytes(), Encoding::Json).unwrap(), NOW);
        assert_eq!(n.truncated, 2, "once per record");
        let points = n.points();
        assert_eq!(points.len(), 1);
        let kept = &points[0].labels.iter().find(|l| l.key == "service.name").unwrap().value;
        assert_eq!(kept.len(), crate::normalize::labels::MAX_VALUE_BYTES);
    }

    #[test]
    fn severities() {
        assert_eq!(severity(1, ""), "TRACE");
        assert_eq!(severity(9, "x"), "INFO");
        assert_eq!(severity(24, ""), "FATAL");
        assert_eq!(severity(99, ""), "UNSPECIFIED");
    }
}
