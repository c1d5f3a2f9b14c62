//! `cargo xtask <command>`: the project's automation, in Rust.

use anyhow::{bail, Result};
use std::path::PathBuf;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  dev      install missing tools, build the three Workers, apply migrations and
           run the whole stack locally (ingest :8787, rollup :8788, dashboard-api :8789)
             --state DIR   local state folder (default .wrangler/state)
  test     run every test: the format and lint gates, unit tests, then the end-to-end
           suite against a fresh local stack
             --only NAME   only the end-to-end test file tests/tests/NAME.rs (no gates, no unit tests)
  lint     only the gates: cargo fmt --check and cargo clippy with warnings denied
  bench    load-run the local stack and report workerd CPU time per ingest request
             --requests N  requests per payload (default 100)
             --only TEXT   only the payloads whose name contains TEXT
  bench-rollup
           time one rollup cron run over points ingested through the local stack
             --points N    points (default 100000)
             --default-budget  keep the rollup's default budget and run until the backlog is drained
  bench-load
           run the load workloads W1 (10k) and W2 (burst) against the local stack with
           the cron every minute; print D1 rows, lag, CPU per run and a modelled monthly bill
             --minutes N   how long W1 runs (default 10; the first 2 runs are warm-up)
             --only W      only w1 or only w2
  bench-query
           time dashboard-api queries over 7 days and 24 hours of minute histograms in the local runtime
  deploy   publish the three Workers and apply D1 migrations remotely
             --dry-run     bundle each Worker and report sizes; publish nothing
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "dev" => {
            let mut state = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--state" => state = Some(PathBuf::from(it.next().ok_or_else(|| anyhow::anyhow!("--state needs a folder"))?)),
                    other => bail!("unknown option {other:?} for dev\n\n{HELP}"),
                }
            }
            xtask::dev::run(state)
        }
        "lint" => xtask::test::gates(&xtask::root()),
        "test" => {
            let mut only = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--only" => only = Some(it.next().ok_or_else(|| anyhow::anyhow!("--only needs a test file name"))?),
                    other => bail!("unknown option {other:?} for test\n\n{HELP}"),
                }
            }
            xtask::test::run(only.as_deref())
        }
        "bench" => {
            let mut requests = 100;
            let mut only = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--requests" => {
                        requests = it.next().and_then(|n| n.parse().ok()).ok_or_else(|| anyhow::anyhow!("--requests needs a number"))?
                    }
                    "--only" => only = Some(it.next().ok_or_else(|| anyhow::anyhow!("--only needs a text"))?),
                    other => bail!("unknown option {other:?} for bench\n\n{HELP}"),
                }
            }
            xtask::bench::run(requests, only.as_deref())
        }
        "bench-rollup" => {
            let mut points = 100_000;
            let mut default_budget = false;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--points" => {
                        points = it.next().and_then(|n| n.parse().ok()).ok_or_else(|| anyhow::anyhow!("--points needs a number"))?
                    }
                    "--default-budget" => default_budget = true,
                    other => bail!("unknown option {other:?} for bench-rollup\n\n{HELP}"),
                }
            }
            if default_budget {
                xtask::bench_rollup::drain(points)
            } else {
                xtask::bench_rollup::run(points)
            }
        }
        "bench-load" => {
            let mut minutes = 10;
            let mut only = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--minutes" => {
                        minutes = it.next().and_then(|n| n.parse().ok()).ok_or_else(|| anyhow::anyhow!("--minutes needs a number"))?
                    }
                    "--only" => only = Some(it.next().ok_or_else(|| anyhow::anyhow!("--only needs w1 or w2"))?),
                    other => bail!("unknown option {other:?} for bench-load\n\n{HELP}"),
                }
            }
            xtask::bench_load::run(minutes, only.as_deref())
        }
        "bench-query" => {
            if let Some(other) = rest.first() {
                bail!("unknown option {other:?} for bench-query\n\n{HELP}");
            }
            xtask::bench_query::run()
        }
        "deploy" => match rest.first().map(String::as_str) {
            None => xtask::deploy::publish(),
            Some("--dry-run") => xtask::deploy::dry_run().map(|_| ()),
            Some(other) => bail!("unknown option {other:?} for deploy\n\n{HELP}"),
        },
        "" | "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}
