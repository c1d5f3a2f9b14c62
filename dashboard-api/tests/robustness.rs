//! Generated queries through everything dashboard-api does with a query's
//! text before and without D1: the precheck, the parser, the selections,
//! resolution planning and evaluation over fixture series. Whatever the
//! input, the answer is a value or an `ApiError`, never a panic (which in
//! the Worker aborts the wasm instance and answers 500).

use dashboard_api::config::Kept;
use dashboard_api::params::Params;
use dashboard_api::query::eval::{self, Env};
use dashboard_api::query::plan;
use dashboard_api::query::select::Field;
use dashboard_api::query::series::SeriesData;
use dashboard_api::query::{self, Times};
use proptest::prelude::*;
use proto::aggregate::Aggregate;
use proto::point::{Counter, Kind, Point, Value};

/// A gauge, a counter and a distribution, each with a few minute buckets.
fn fixtures() -> Vec<SeriesData> {
    let mut out = Vec::new();
    for (name, kind) in [("g", Kind::Gauge), ("c", Kind::Counter), ("d", Kind::Distribution)] {
        for route in ["/a", "/b"] {
            let buckets = (0..5)
                .map(|m| {
                    let start = 600 + m * 60;
                    let mut a = Aggregate::empty(kind != Kind::Counter, "ms");
                    for v in [0.5f64, 3.0, -2.0, 1e6] {
                        let value = match kind {
                            Kind::Counter => Value::Counter(Counter { value: v.abs(), ..Default::default() }),
                            _ => Value::Gauge(v),
                        };
                        a.add_point(&Point { time_unix_nano: start as u64 * 1_000_000_000, value: Some(value), ..Default::default() });
                    }
                    (start, a)
                })
                .collect();
            out.push(SeriesData {
                prom_name: name.into(),
                labels: vec![("route".into(), route.into())],
                kind,
                field: Field::Value,
                buckets,
            });
        }
    }
    out
}

/// Runs `q` as an instant and as a range query; the result is irrelevant,
/// only that there is one.
fn evaluate(q: &str, data: &[SeriesData]) {
    let Ok(expr) = query::parse(q) else { return };
    let Ok(plan) = plan::lower(&expr) else { return };
    let sels = &plan.selections;
    for times in [Times::instant(900.0), Times::range(600.0, 960.0, 60.0).unwrap()] {
        let windows: Vec<f64> = sels.iter().map(|s| s.range_s.unwrap_or(times.default_window())).collect();
        let resolution = times.resolution(&windows, &Kept::default(), 1000.0);
        let fetched: Vec<_> = sels
            .iter()
            .map(|s| {
                let names = s.names();
                let series = data
                    .iter()
                    .filter(|d| names.contains(&d.prom_name))
                    .map(|d| SeriesData { field: s.field_of(&d.prom_name), prom_name: s.name.clone(), ..d.clone() })
                    .collect();
                (s.clone(), series)
            })
            .collect();
        let env = Env { fetched: &fetched, default_window: times.default_window(), resolution };
        for t in times.each() {
            let _ = eval::eval(&plan.root, t, &env);
        }
    }
}

/// Pieces of PromQL, several of them hostile, to join at random.
const TOKENS: &[&str] = &[
    "g",
    "c",
    "d",
    "d_count",
    "d_sum",
    "x",
    "{",
    "}",
    "route=\"/a\"",
    "route=~\".*\"",
    "quantile=\"0.99\"",
    "quantile=\"nan\"",
    "quantile=\"2\"",
    "__name__=\"g\"",
    ",",
    "(",
    ")",
    "[",
    "]",
    "5m",
    "1h",
    "1e30",
    "2e19",
    "0",
    "-1",
    "0x10",
    "1e400",
    ":",
    " offset ",
    " @ ",
    "inf",
    "nan",
    "NaN",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    " > ",
    " and ",
    " or ",
    " by ",
    " without ",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "rate",
    "increase",
    "histogram_quantile",
    "abs",
    "0.5",
    "1.5",
    "-0.5",
    "1e308",
    "\"s\"",
    "'",
    "`",
    "#",
    "\n",
    " ",
    "start()",
    "end()",
    "9223372036",
    "9223372037",
    "18446744073709551615",
    ".5e30",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 1..16)) {
        let q: String = picks.iter().map(|&i| TOKENS[i]).collect();
        evaluate(&q, &fixtures());
    }

    #[test]
    fn arbitrary_text_never_panics(q in "\\PC{0,64}") {
        evaluate(&q, &fixtures());
    }

    #[test]
    fn request_parameters_never_panic(name in "(time|start|end|step|query|match\\[\\])", value in "\\PC{0,24}") {
        let p = Params::parse(Some(&format!("{name}={}", value.replace('&', "%26"))), None);
        let _ = p.time(&name, 0.0);
        let _ = p.duration(&name);
        let _ = p.required_time(&name);
        if let (Ok(s), Ok(e), Ok(st)) = (p.required_time(&name), p.time(&name, 0.0), p.duration(&name)) {
            let _ = Times::range(s, e, st).map(|t| t.each().len());
        }
    }
}
