//! `cargo xtask dev`: everything from a fresh clone to a running stack.

use crate::stack::{self, Options, Stack, DEV_INGEST_KEY, DEV_READ_KEY, DEV_STATUS_KEY};
use crate::{root, step, tools, workers};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Duration;

pub fn run(state: Option<PathBuf>) -> Result<()> {
    let root = root();
    let state = state.unwrap_or_else(|| root.join(".wrangler/state"));
    let tools = tools::ensure(&root)?;
    workers::build_all(&root, &tools)?;
    step(&format!("applying D1 migrations to {}", state.display()));
    stack::migrate(&root, &state)?;
    stack::stop_on_signals()?;
    step("starting ingest, rollup and dashboard-api under wrangler dev");
    let mut stack = Stack::start(&root, &Options::dev(state.clone()))?;
    let u = &stack.urls;
    eprintln!(
        "\n\x1b[1mThe stack is up\x1b[0m (state in {state})
  ingest         {ingest}   POST /v1/metrics   Authorization: Bearer {DEV_INGEST_KEY}
  rollup         {rollup}   GET /__scheduled?cron=*+*+*+*+* runs one rollup; GET /status   Authorization: Bearer {DEV_STATUS_KEY}
  dashboard-api  {dash}   GET /api/v1/query   Authorization: Bearer {DEV_READ_KEY}
Press Ctrl-C to stop.\n",
        state = state.display(),
        ingest = u.ingest,
        rollup = u.rollup,
        dash = u.dashboard_api,
    );
    loop {
        if stack::stop_requested() {
            step("stopping");
            stack.stop();
            return Ok(());
        }
        if let Some(dead) = stack.exited() {
            stack.stop();
            bail!("{dead} stopped, so the whole stack was stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
