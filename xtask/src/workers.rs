//! Building the three Workers to wasm with worker-build.

use crate::tools::Tools;
use crate::{run, step};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

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

/// Builds every Worker (release, wasm-opt'ed) into `<crate>/build/`,
/// skipping those whose build is newer than all of their sources.
pub fn build_all(root: &Path, tools: &Tools) -> Result<()> {
    for (i, w) in ALL.iter().enumerate() {
        let output = root.join(w.name).join("build/worker/shim.mjs");
        if up_to_date(root, w, &output) {
            step(&format!("[{}/{}] the {} Worker is up to date", i + 1, ALL.len(), w.name));
            continue;
        }
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

/// Whether `output` is newer than everything the Worker is built from: its
/// crate, `proto/`, the workspace manifest and lock file.
fn up_to_date(root: &Path, w: &Worker, output: &Path) -> bool {
    let Ok(built) = std::fs::metadata(output).and_then(|m| m.modified()) else { return false };
    let inputs = [
        root.join(w.name).join("src"),
        root.join(w.name).join("Cargo.toml"),
        root.join("proto"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    inputs.iter().all(|p| newest(p).is_some_and(|t| t <= built))
}

/// The newest modification time of a file or anything below a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    let mut latest = meta.modified().ok()?;
    for entry in std::fs::read_dir(path).ok()? {
        let t = newest(&entry.ok()?.path())?;
        latest = latest.max(t);
    }
    Some(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_older_than_a_source_is_stale() {
        let dir = std::env::temp_dir().join(format!("xtask-fresh-{}", std::process::id()));
        let w = Worker { name: "w", port: 1 };
        for d in ["w/src", "proto"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["w/Cargo.toml", "Cargo.toml", "Cargo.lock", "w/src/lib.rs", "proto/x.rs"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let out = dir.join("w/build.out");
        assert!(!up_to_date(&dir, &w, &out), "no output yet");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&out, "wasm").unwrap();
        assert!(up_to_date(&dir, &w, &out));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("proto/x.rs"), "changed").unwrap();
        assert!(!up_to_date(&dir, &w, &out), "a changed contract rebuilds every Worker");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
