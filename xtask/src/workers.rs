//! Building the three Workers to wasm with worker-build.

use crate::tools::Tools;
use crate::{run, step};
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// A Worker of the pipeline: its crate folder, its wrangler environment and
/// the port it gets locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Worker {
    pub name: &'static str,
    pub port: u16,
}

pub const INGEST: Worker = Worker { name: "ingest", port: 8787 };
pub const ROLLUP: Worker = Worker { name: "rollup", port: 8788 };
pub const DASHBOARD_API: Worker = Worker { name: "dashboard-api", port: 8789 };
pub const ALL: [Worker; 3] = [INGEST, ROLLUP, DASHBOARD_API];

/// Builds every Worker (release, wasm-opt'ed) into `<crate>/build/`.
pub fn build_all(root: &Path, tools: &Tools) -> Result<()> {
    for (i, w) in ALL.iter().enumerate() {
        step(&format!("[{}/{}] building the {} Worker (release wasm)", i + 1, ALL.len(), w.name));
        run(Command::new(&tools.worker_build)
            .arg("--release")
            .current_dir(root.join(w.name))
            .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
            .env("WASM_OPT_BIN", &tools.wasm_opt))?;
        let wasm = root.join(w.name).join("build/index_bg.wasm");
        if let Ok(meta) = std::fs::metadata(&wasm) {
            eprintln!("    {} wasm: {} KiB", w.name, meta.len() / 1024);
        }
    }
    Ok(())
}
