//! `cargo xtask test`: every test. Unit tests natively, then the end-to-end
//! suite against one fresh local stack, which is always stopped afterwards.

use crate::stack::{self, Deliveries, Logs, Options, Stack, DEV_INGEST_KEY, DEV_READ_KEY, DEV_TENANT};
use crate::{root, step, tools, workers};
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// A second tenant, for isolation tests.
pub const OTHER_TENANT: &str = "other";
pub const OTHER_INGEST_KEY: &str = "other-ingest-key";
pub const OTHER_READ_KEY: &str = "other-read-key";

/// The test stack's cardinality limit, low enough for a test to exceed.
pub const MAX_SERIES_PER_METRIC: u64 = 100;

/// The test stack's points budget per rollup run, low enough for a test to
/// build a backlog that takes several runs to drain.
pub const MAX_POINTS_PER_RUN: u64 = 3000;

/// The test stack's retention step, small enough for a test to see rows
/// deleted over several runs.
pub const MAX_DELETES_PER_RUN: u64 = 50;

/// The test stack listens 10000 above the dev ports, so a running
/// `cargo xtask dev` does not get in the way.
pub const PORT_OFFSET: u16 = 10_000;

/// The format and lint gates: a diff from `rustfmt.toml` or any clippy
/// warning (the workspace's lints in `Cargo.toml` included) fails the run,
/// as a failing test does.
pub fn gates(root: &std::path::Path) -> Result<()> {
    step("format gate (cargo fmt --check)");
    crate::run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]).current_dir(root))
        .context("the code is not formatted as rustfmt.toml says: run `cargo fmt --all`")?;
    step("lint gate (cargo clippy, warnings denied)");
    crate::run(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]).current_dir(root))
        .context("clippy found warnings")?;
    Ok(())
}

/// Every test, or with `only` just the end-to-end file `tests/tests/<only>.rs`.
pub fn run(only: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let root = root();
    let tools = tools::ensure(&root)?;
    let python = tools::python_sdk(&root)?;
    let promtool = tools::promtool(&root)?;

    if let Some(name) = only {
        if !root.join("tests/tests").join(format!("{name}.rs")).exists() {
            bail!("no end-to-end test file tests/tests/{name}.rs");
        }
    } else {
        gates(&root)?;
        step("unit tests (native)");
        crate::run(Command::new("cargo").args(["test", "--workspace", "--exclude", "e2e"]).current_dir(&root))?;
    }

    workers::build_all(&root, &tools)?;

    let work = root.join("target/e2e");
    let state = work.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("clearing {}", state.display()))?;
    }
    step("applying D1 migrations to a fresh state folder");
    stack::migrate(&root, &state)?;
    stack::stop_on_signals()?;
    step("starting the stack for the end-to-end suite");
    let opts = Options {
        state: state.clone(),
        port_offset: PORT_OFFSET,
        ingest_keys: format!(r#"{{"{DEV_INGEST_KEY}":"{DEV_TENANT}","{OTHER_INGEST_KEY}":"{OTHER_TENANT}"}}"#),
        read_keys: format!(r#"{{"{DEV_READ_KEY}":"{DEV_TENANT}","{OTHER_READ_KEY}":"{OTHER_TENANT}"}}"#),
        vars: vec![
            // Lets a test queue an unreadable message (ingest/src/consumer.rs).
            ("ingest", "TEST_FAULTS".into(), "dead-letter".into()),
            ("rollup", "MAX_SERIES_PER_METRIC".into(), MAX_SERIES_PER_METRIC.to_string()),
            ("rollup", "MAX_POINTS_PER_RUN".into(), MAX_POINTS_PER_RUN.to_string()),
            ("rollup", "MAX_DELETES_PER_RUN".into(), MAX_DELETES_PER_RUN.to_string()),
        ],
        logs: Logs::Files(work.join("logs")),
        deliveries: Deliveries::Prompt,
    };
    let mut stack = Stack::start(&root, &opts)?;

    step("end-to-end tests");
    let mut cargo = Command::new("cargo");
    // Every test binary runs even after one fails, so one run shows every failure.
    cargo.args(["test", "--package", "e2e", "--no-fail-fast"]);
    if let Some(name) = only {
        cargo.args(["--test", name]);
    }
    let mut child = cargo
        .current_dir(&root)
        .env("E2E_INGEST_URL", &stack.urls.ingest)
        .env("E2E_ROLLUP_URL", &stack.urls.rollup)
        .env("E2E_DASHBOARD_URL", &stack.urls.dashboard_api)
        .env("E2E_STATE", &state)
        // The dev-command test runs this very binary's `dev`.
        .env("E2E_XTASK_BIN", std::env::current_exe()?)
        .env("E2E_PYTHON", &python)
        .env("E2E_PROMTOOL", &promtool)
        .spawn()
        .context("starting the end-to-end tests")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stack::stop_requested() {
            let _ = child.kill();
            let _ = child.wait();
            stack.stop();
            bail!("interrupted; the stack was stopped");
        }
        if let Some(dead) = stack.exited() {
            let _ = child.kill();
            let _ = child.wait();
            let i = crate::workers::ALL.iter().position(|w| w.name == dead).unwrap_or(0);
            let tail = stack.log_tail(i);
            stack.stop();
            bail!("{dead} died during the end-to-end tests{tail}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stack.stop();
    if !status.success() {
        bail!("end-to-end tests failed; the Workers' logs are in {}", work.join("logs").display());
    }
    eprintln!("all tests passed in {:.0?}", started.elapsed());
    Ok(())
}
