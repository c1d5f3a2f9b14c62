//! Automation behind `cargo xtask`: installing the pinned toolchain, building
//! the Workers to wasm, running them under `wrangler dev`, testing and
//! deploying. The end-to-end tests reuse [`stack`] and [`deploy`].

pub mod bench;
pub mod bench_load;
pub mod bench_query;
pub mod bench_rollup;
pub mod deploy;
pub mod dev;
pub mod stack;
pub mod test;
pub mod tools;
pub mod workers;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where the workspace `Cargo.toml` is).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Prints a step heading, so long commands show where they are.
pub fn step(msg: &str) {
    eprintln!("\x1b[1m==> {msg}\x1b[0m");
}

/// Runs a command to completion, failing with its name if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs a command and returns its standard output, or `None` if it cannot run
/// or fails (used to probe installed tools).
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Percent-encodes a query parameter value (the benchmarks' and the
/// end-to-end tests' URLs).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pinned wrangler from `node_modules`.
pub fn wrangler(root: &Path) -> Command {
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.current_dir(root)
        // No telemetry, no update checks, no interactive prompts.
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("CI", "true");
    cmd
}
