//! Evaluation over fixtures: series built from known samples, so every
//! expected value is computed by hand from those samples.

use super::*;
use crate::query::{parse, plan, Times};
use proto::point::{Counter, Point, Value as PV};

/// A series with one bucket per (start, samples) at 1-minute resolution.
fn series(name: &str, kind: Kind, labels: &[(&str, &str)], buckets: &[(i64, &[f64])]) -> SeriesData {
    let buckets = buckets
        .iter()
        .map(|&(start, values)| {
            let mut a = Aggregate::empty(kind != Kind::Counter, "");
            for &v in values {
                let value = if kind == Kind::Counter { PV::Counter(Counter { value: v, ..Default::default() }) } else { PV::Gauge(v) };
                a.add_point(&Point { time_unix_nano: start as u64 * 1_000_000_000, value: Some(value), ..Default::default() });
            }
            (start, a)
        })
        .collect();
    SeriesData {
        prom_name: name.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        kind,
        field: Field::Value,
        buckets,
    }
}

/// Evaluates `q` at each of `times` over `data`, giving every selection
/// the series it could be served by (as the store does).
fn run_at(q: &str, times: Times, data: &[SeriesData]) -> Result<Vec<Value>, ApiError> {
    run_at_resolution(q, times, 60, data)
}

/// As [`run_at`], with `data` stored at `resolution`.
fn run_at_resolution(q: &str, times: Times, resolution: i64, data: &[SeriesData]) -> Result<Vec<Value>, ApiError> {
    let plan = plan::lower(&parse(q)?)?;
    let fetched: Vec<(Selection, Vec<SeriesData>)> = plan
        .selections
        .into_iter()
        .map(|s| {
            let names = s.names();
            let series = data
                .iter()
                .filter(|d| names.contains(&d.prom_name))
                .map(|d| SeriesData { field: s.field_of(&d.prom_name), prom_name: s.name.clone(), ..d.clone() })
                .collect();
            (s, series)
        })
        .collect();
    let env = Env { fetched: &fetched, default_window: times.default_window(), resolution };
    times.each().into_iter().map(|t| eval(&plan.root, t, &env)).collect()
}

fn run(q: &str, t: f64, data: &[SeriesData]) -> Result<Value, ApiError> {
    Ok(run_at(q, Times::instant(t), data)?.remove(0))
}

fn values(v: &Value) -> Vec<(Vec<(&str, &str)>, f64)> {
    match v {
        Value::Scalar(x) => vec![(vec![], *x)],
        Value::Vector(s) => s.iter().map(|s| (s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(), s.value)).collect(),
    }
}

fn latency() -> Vec<SeriesData> {
    let api: Vec<f64> = (1..=100).map(f64::from).collect();
    let web: Vec<f64> = (101..=200).map(f64::from).collect();
    vec![
        series("lat", Kind::Distribution, &[("route", "/a"), ("service_name", "api")], &[(600, &api[..50]), (660, &api[50..])]),
        series("lat", Kind::Distribution, &[("route", "/b"), ("service_name", "web")], &[(600, &web)]),
    ]
}

#[test]
fn scalar_arithmetic_for_grafanas_connection_test() {
    assert_eq!(run("1+1", 4.0, &[]).unwrap(), Value::Scalar(2.0));
    assert_eq!(run("-(2 * 3) ^ 2", 4.0, &[]).unwrap(), Value::Scalar(-36.0));
}

#[test]
fn quantile_of_a_distribution_over_the_default_window() {
    let v = run(r#"lat{quantile="0.99", service_name="api"}"#, 900.0, &latency()).unwrap();
    assert_eq!(values(&v), [(vec![("__name__", "lat"), ("quantile", "0.99"), ("route", "/a"), ("service_name", "api")], 99.0)]);
    // The window [t − 5m, t) at t = 690 holds only the first minute (1..=50).
    let v = run(r#"lat{quantile="1", service_name="api"}"#, 690.0, &latency()).unwrap();
    assert_eq!(values(&v)[0].1, 100.0, "the minute starting at 660 starts before 690");
    let v = run(r#"lat{quantile="1", service_name="api"}"#, 660.0, &latency()).unwrap();
    assert_eq!(values(&v)[0].1, 50.0);
}

#[test]
fn a_range_selector_sets_the_window() {
    let data = latency();
    // [660 − 60, 660) vs [720 − 60, 720): one minute each.
    assert_eq!(values(&run(r#"lat{quantile="0.5",route="/a"}[1m]"#, 720.0, &data).unwrap())[0].1, 75.0);
    assert_eq!(values(&run(r#"lat{quantile="0.5",route="/a"}[2m]"#, 720.0, &data).unwrap())[0].1, 50.0);
}

#[test]
fn aggregating_distributions_merges_histograms() {
    let data = latency();
    // The median of 1..=200 is 100; an average of the two medians would be 100.5,
    // a max of them 150.
    for q in [r#"sum(lat{quantile="0.5"})"#, r#"max(lat{quantile="0.5"})"#] {
        assert_eq!(values(&run(q, 900.0, &data).unwrap()), [(vec![], 100.0)], "{q}");
    }
    let without = run(r#"avg without (route, service_name) (lat{quantile="0.5"})"#, 900.0, &data).unwrap();
    assert_eq!(values(&without), [(vec![("quantile", "0.5")], 100.0)]);
    let by = run(r#"sum by (service_name) (lat{quantile="0.9"})"#, 900.0, &data).unwrap();
    assert_eq!(values(&by), [(vec![("service_name", "api")], 90.0), (vec![("service_name", "web")], 190.0)]);
    assert_eq!(values(&run("count(lat)", 900.0, &data).unwrap()), [(vec![], 2.0)]);
    // histogram_quantile over a merged group, without a quantile label.
    let hq = run("histogram_quantile(0.25, sum(lat))", 900.0, &data).unwrap();
    assert_eq!(values(&hq), [(vec![], 50.0)]);
    let per = run("histogram_quantile(0.99, lat)", 900.0, &data).unwrap();
    assert_eq!(
        values(&per),
        [(vec![("route", "/a"), ("service_name", "api")], 99.0), (vec![("route", "/b"), ("service_name", "web")], 199.0)]
    );
    // A distribution without a quantile has no single value.
    assert_eq!(run("lat", 900.0, &data).unwrap(), Value::Vector(vec![]));
}

#[test]
fn float_aggregations() {
    let data = vec![
        series("temp", Kind::Gauge, &[("room", "a")], &[(600, &[20.0, 21.0])]),
        series("temp", Kind::Gauge, &[("room", "b")], &[(600, &[25.0])]),
    ];
    assert_eq!(values(&run("temp", 700.0, &data).unwrap()).len(), 2);
    for (q, want) in [("sum(temp)", 46.0), ("avg(temp)", 23.0), ("min(temp)", 21.0), ("max(temp)", 25.0), ("count(temp)", 2.0)] {
        assert_eq!(values(&run(q, 700.0, &data).unwrap()), [(vec![], want)], "{q}");
    }
    assert_eq!(values(&run("temp * 2 - 1", 700.0, &data).unwrap())[0], (vec![("room", "a")], 41.0));
    // Inside histogram_quantile a gauge is the histogram of its samples.
    assert_eq!(values(&run("histogram_quantile(0.5, sum(temp))", 700.0, &data).unwrap()), [(vec![], 21.0)]);
    assert_eq!(values(&run("100 / temp", 700.0, &data).unwrap())[1], (vec![("room", "b")], 4.0));
}

#[test]
fn rate_and_increase_are_exact_sums_of_the_stored_deltas() {
    let data = vec![series("requests", Kind::Counter, &[("code", "200")], &[(600, &[3.0, 4.0]), (660, &[5.0]), (720, &[100.0])])];
    // [780 − 3m, 780) holds all three minutes; no extrapolation.
    assert_eq!(values(&run("increase(requests[3m])", 780.0, &data).unwrap()), [(vec![("code", "200")], 112.0)]);
    assert_eq!(values(&run("rate(requests[2m])", 720.0, &data).unwrap()), [(vec![("code", "200")], 12.0 / 120.0)]);
    assert_eq!(values(&run("sum(rate(requests[3m])) * 60", 780.0, &data).unwrap()), [(vec![], 112.0 / 3.0)]);
    // A counter alone has no instant value.
    assert_eq!(run("requests", 780.0, &data).unwrap(), Value::Vector(vec![]));
    assert!(matches!(run("rate(requests)", 780.0, &data), Err(ApiError::BadData(_))));
}

#[test]
fn windows_shorter_than_a_bucket_take_its_rate() {
    // Hour buckets (a range past the minutes' retention): 360 requests in
    // the hour starting at 3600, 720 in the next.
    let data = vec![series("requests", Kind::Counter, &[], &[(3600, &[360.0]), (7200, &[720.0])])];
    let at = |q: &str, t: f64| values(&run_at_resolution(q, Times::instant(t), 3600, &data).unwrap().remove(0))[0].1;
    // A 10-minute window reads the hour that starts in [t − 1h, t) and
    // takes its rate: 10 minutes of 6 a minute, not the hour's 360.
    assert_eq!(at("increase(requests[10m])", 7200.0), 60.0);
    assert_eq!(at("rate(requests[10m])", 7200.0), 0.1);
    assert_eq!(at("increase(requests[10m])", 10_800.0), 120.0);
    // Windows of whole buckets are exact sums, as at any resolution.
    assert_eq!(at("increase(requests[2h])", 10_800.0), 1080.0);
}

#[test]
fn count_and_sum_of_a_distribution_behave_as_counters() {
    let data = latency();
    let count = run("increase(lat_count[10m])", 900.0, &data).unwrap();
    assert_eq!(
        values(&count),
        [(vec![("route", "/a"), ("service_name", "api")], 100.0), (vec![("route", "/b"), ("service_name", "web")], 100.0)]
    );
    let mean = run("sum(rate(lat_sum[10m])) / sum(rate(lat_count[10m]))", 900.0, &data).unwrap();
    assert_eq!(values(&mean), [(vec![], 100.5)]);
}

#[test]
fn a_range_query_evaluates_each_step_over_its_own_window() {
    let data = vec![series("requests", Kind::Counter, &[], &[(600, &[1.0]), (660, &[2.0]), (720, &[4.0])])];
    let steps = run_at("increase(requests[1m])", Times::range(660.0, 780.0, 60.0).unwrap(), &data).unwrap();
    let got: Vec<f64> = steps.iter().map(|v| values(v)[0].1).collect();
    assert_eq!(got, [1.0, 2.0, 4.0], "each minute once");
    // Without a range the window is the step: the same partition.
    let steps = run_at("sum(lat_count)", Times::range(660.0, 720.0, 60.0).unwrap(), &latency()).unwrap();
    assert_eq!(steps, [Value::Vector(vec![]), Value::Vector(vec![])], "counters need rate()");
    let steps = run_at(r#"max(lat{quantile="1"})"#, Times::range(660.0, 720.0, 60.0).unwrap(), &latency()).unwrap();
    assert_eq!(steps.iter().map(|v| values(v)[0].1).collect::<Vec<_>>(), [200.0, 100.0]);
}

#[test]
fn a_summarys_own_quantile_label_selects_instead_of_computing() {
    let data = vec![
        series("rpc", Kind::Gauge, &[("quantile", "0.5")], &[(600, &[12.0])]),
        series("rpc", Kind::Gauge, &[("quantile", "0.99")], &[(600, &[80.0])]),
    ];
    assert_eq!(values(&run(r#"rpc{quantile="0.99"}"#, 700.0, &data).unwrap()), [(vec![("__name__", "rpc"), ("quantile", "0.99")], 80.0)]);
    assert_eq!(values(&run("rpc", 700.0, &data).unwrap()).len(), 2);
}

#[test]
fn vector_matching_is_one_to_one_on_labels() {
    let data = vec![
        series("a", Kind::Gauge, &[("x", "1")], &[(600, &[6.0])]),
        series("a", Kind::Gauge, &[("x", "2")], &[(600, &[8.0])]),
        series("b", Kind::Gauge, &[("x", "1")], &[(600, &[3.0])]),
    ];
    assert_eq!(values(&run("a / b", 700.0, &data).unwrap()), [(vec![("x", "1")], 2.0)]);
}

/// Cases from Prometheus' own promqltest files (aggregators.test at
/// d15adb9), values in label order as Prometheus feeds them.
#[test]
// The big value as Prometheus' test file spells it.
#[allow(clippy::excessive_precision)]
fn sum_avg_min_max_match_prometheus() {
    let (inf, nan, big) = (f64::INFINITY, f64::NAN, 9.988465674311579e307);
    let same = |a: Option<f64>, b: f64| a.is_some_and(|a| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
    // Kahan: "ten" is 2, 8, 1e100, -1e100.
    assert!(same(sum(&[2.0, 8.0, 1e100, -1e100]), 10.0));
    assert!(same(avg(&[2.0, 8.0, 1e100, -1e100]), 2.5));
    for (values, want_sum, want_avg) in [
        (vec![inf, 2.0], inf, inf),
        (vec![2.0, inf], inf, inf),
        (vec![-inf, 2.0], -inf, -inf),
        (vec![inf, -inf], nan, nan),
        (vec![nan, 2.0], nan, nan),
        (vec![2.0, nan], nan, nan),
    ] {
        assert!(same(sum(&values), want_sum), "sum {values:?}");
        assert!(same(avg(&values), want_avg), "avg {values:?}");
    }
    // avg: labels a, b, c, (d) in order.
    for (values, want) in [
        (vec![8.0, 10.0, 12.0], 10.0),
        (vec![0.0, inf, 0.0, inf], inf),
        (vec![inf, 0.0, inf], inf),
        (vec![inf, inf, -inf], nan),
        (vec![-inf, 0.0, inf], nan),
        (vec![big, big, big, big], big),
        (vec![-big, -big, -big, -big], -big),
        (vec![-big, -big, big, big], 0.0),
        (vec![52.0; 12], 52.0),
    ] {
        assert!(same(avg(&values), want), "avg {values:?}: {:?}", avg(&values));
    }
    // min and max: NaN loses to any number after it.
    assert!(same(extreme(&[nan, 3.0, 4.0], |v, b| v > b), 4.0));
    assert!(same(extreme(&[nan, 3.0, 4.0], |v, b| v < b), 3.0));
    assert!(same(extreme(&[1.0, nan], |v, b| v > b), 1.0));
    assert!(same(extreme(&[nan, nan], |v, b| v > b), nan));
    assert_eq!(sum(&[]), None);
}

#[test]
fn aggregations_over_fetched_series_use_the_prometheus_rules() {
    // Gauges whose latest values are 2, 8, 1e100 and -1e100, in label order.
    let data: Vec<SeriesData> = [("a", 2.0), ("b", 8.0), ("c", 1e100), ("d", -1e100)]
        .iter()
        .map(|(p, v)| series("g", Kind::Gauge, &[("point", p)], &[(600, &[*v])]))
        .rev()
        .collect();
    assert_eq!(values(&run("sum(g)", 660.0, &data).unwrap()), [(vec![], 10.0)]);
    assert_eq!(values(&run("avg(g)", 660.0, &data).unwrap()), [(vec![], 2.5)]);
    // max of NaN and a number is the number (x / 0 is NaN for x = 0).
    let zero = [series("z", Kind::Gauge, &[("i", "0")], &[(600, &[0.0])]), series("z", Kind::Gauge, &[("i", "1")], &[(600, &[3.0])])];
    assert_eq!(values(&run("max(z / 0)", 660.0, &zero).unwrap()), [(vec![], f64::INFINITY)]);
    assert_eq!(values(&run("min(z / 0)", 660.0, &zero).unwrap()), [(vec![], f64::INFINITY)]);
}

#[test]
fn histogram_quantile_of_an_empty_distribution_is_nan() {
    // A gauge series whose bucket holds a count but no samples (as a
    // distribution point with a count and no buckets leaves it).
    let mut a = Aggregate::empty(true, "");
    a.add_point(&Point {
        time_unix_nano: 600_000_000_000,
        value: Some(PV::Distribution(proto::point::Distribution { count: 3, ..Default::default() })),
        ..Default::default()
    });
    let empty = SeriesData {
        prom_name: "d".into(),
        labels: vec![("x".into(), "1".into())],
        kind: Kind::Distribution,
        field: Field::Value,
        buckets: vec![(600, a)],
    };
    let v = run("histogram_quantile(0.5, d)", 660.0, &[empty]).unwrap();
    let got = values(&v);
    assert_eq!(got.len(), 1, "the series is kept: {v:?}");
    assert_eq!(got[0].0, [("x", "1")]);
    assert!(got[0].1.is_nan());
}
