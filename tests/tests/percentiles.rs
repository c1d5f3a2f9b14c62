//! Percentiles read back through dashboard-api match the exact percentiles of
//! the raw values within the documented error (proto::aggregate: 0.1 %
//! relative, the exact min and max at φ = 0 and 1), after the samples went
//! through ingest, archives, the rollup's merges and D1.

use e2e::*;
use std::time::Duration;

/// The bound documented in proto::aggregate.
const RELATIVE_ERROR: f64 = 0.001;
const QUANTILES: [f64; 8] = [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];

/// splitmix64: a fixed sequence, so a failure can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A request latency in ms: log-normal around 40 ms with a long tail.
    fn latency_ms(&mut self) -> f64 {
        let (u1, u2) = (self.next().max(1e-12), self.next());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (40f64.ln() + 1.2 * z).exp()
    }
}

/// The ⌈φ·n⌉-th smallest value (the first for φ = 0).
fn exact(sorted: &[f64], phi: f64) -> f64 {
    let rank = ((phi * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn quantile(stack: &Stack, metric: &str, phi: f64, t: u64) -> anyhow::Result<Option<f64>> {
    let name = proto::names::prom_name(metric);
    let r = instant_query(stack, &format!(r#"{name}{{quantile="{phi}"}}"#), t as f64)?;
    anyhow::ensure!(r.status == 200, "query answered {}: {}", r.status, r.text());
    let json = r.json();
    Ok(json["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()))
}

fn check(stack: &Stack, metric: &str, values: &mut [f64], t: u64) -> anyhow::Result<()> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    rollup_until(stack, Duration::from_secs(60), || Ok((counted(metric, 3600)? == n as f64).then_some(())))?;
    for phi in QUANTILES {
        let want = exact(values, phi);
        let got = quantile(stack, metric, phi, t)?.ok_or_else(|| anyhow::anyhow!("no value for φ = {phi}"))?;
        let error = (got - want).abs() / want.abs();
        assert!(error <= RELATIVE_ERROR, "{metric} φ = {phi}: read {got}, exact {want}, error {:.4} %", error * 100.0);
        if phi == 0.0 || phi == 1.0 {
            assert_eq!(got, want, "the extremes are exact");
        }
    }
    Ok(())
}

#[test]
fn latency_percentiles_match_the_exact_ones_within_the_documented_error() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("percentiles.latency");
    let now = now_nanos() / 1_000_000_000;
    let minute = now - now % 60 - 120;
    let mut rng = Rng(0x5EED);
    let mut values = Vec::new();
    // Three requests, so the rollup merges histograms of several batches
    // (and possibly archives) into one row.
    for _ in 0..3 {
        let points: Vec<(u64, f64)> = (0..900).map(|i| (minute + i % 60, rng.latency_ms())).collect();
        values.extend(points.iter().map(|p| p.1));
        post_gauge(&stack, &metric, "ms", &points)?;
    }
    check(&stack, &metric, &mut values, minute + 60)
}

#[test]
fn negative_values_read_back_through_the_mirrored_histogram() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("percentiles.signed");
    let now = now_nanos() / 1_000_000_000;
    let minute = now - now % 60 - 120;
    let mut rng = Rng(0xC0FFEE);
    // Magnitudes from 0.01 to 100 of a unitless value, either sign.
    let points: Vec<(u64, f64)> = (0..1000)
        .map(|i| {
            let magnitude = 10f64.powf(rng.next() * 4.0 - 2.0);
            (minute + i % 60, if rng.next() < 0.4 { -magnitude } else { magnitude })
        })
        .collect();
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    post_gauge(&stack, &metric, "1", &points)?;
    check(&stack, &metric, &mut values, minute + 60)
}
