//! `cargo xtask deploy`: publish the three Workers and migrate the remote D1.
//! `--dry-run` bundles each Worker as `wrangler deploy` would and checks its
//! size against the Workers script limits, without contacting Cloudflare.

use crate::workers::{Worker, ALL, DASHBOARD_API, INGEST, ROLLUP};
use crate::{root, run, step, tools, workers, wrangler};
use anyhow::{bail, Context, Result};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::Path;

/// Compressed script size limits: Workers Free and Paid.
pub const FREE_LIMIT: u64 = 3 << 20;
pub const PAID_LIMIT: u64 = 10 << 20;

/// A Worker's bundle as `wrangler deploy --dry-run` wrote it.
#[derive(Debug)]
pub struct Bundle {
    pub worker: &'static str,
    pub raw_bytes: u64,
    pub gzip_bytes: u64,
}

/// Builds, bundles and reports every Worker's size.
pub fn dry_run() -> Result<Vec<Bundle>> {
    let root = root();
    let tools = tools::ensure(&root)?;
    workers::build_all(&root, &tools)?;
    let bundles = bundle(&root)?;
    report(&bundles);
    check(&bundles)?;
    Ok(bundles)
}

/// Bundles the already built Workers with `wrangler deploy --dry-run`.
pub fn bundle(root: &Path) -> Result<Vec<Bundle>> {
    let mut out = Vec::new();
    for w in ALL {
        let dir = root.join("target/deploy").join(w.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        step(&format!("bundling {} (wrangler deploy --dry-run)", w.name));
        run(wrangler(root).args(["deploy", "--dry-run", "--env", w.name, "--outdir"]).arg(&dir))?;
        let (raw, gz) = sizes(&dir)?;
        out.push(Bundle { worker: w.name, raw_bytes: raw, gzip_bytes: gz });
    }
    Ok(out)
}

/// Fails if a bundle exceeds the Paid limit.
pub fn check(bundles: &[Bundle]) -> Result<()> {
    for b in bundles {
        if b.gzip_bytes > PAID_LIMIT {
            bail!("{} is {} bytes compressed, over the {} byte limit of Workers Paid", b.worker, b.gzip_bytes, PAID_LIMIT);
        }
    }
    Ok(())
}

pub fn report(bundles: &[Bundle]) {
    eprintln!(
        "{:<15} {:>12} {:>12}  limits: {} KiB (Free), {} KiB (Paid), compressed",
        "worker",
        "raw KiB",
        "gzip KiB",
        FREE_LIMIT / 1024,
        PAID_LIMIT / 1024
    );
    for b in bundles {
        let fits = if b.gzip_bytes <= FREE_LIMIT {
            "fits Free"
        } else if b.gzip_bytes <= PAID_LIMIT {
            "needs Paid"
        } else {
            "TOO LARGE"
        };
        eprintln!("{:<15} {:>12} {:>12}  {fits}", b.worker, b.raw_bytes / 1024, b.gzip_bytes / 1024);
    }
}

/// Total raw and gzip-compressed size of the files in `dir`.
fn sizes(dir: &Path) -> Result<(u64, u64)> {
    let mut raw = 0;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|e| e != "map") {
                let bytes = std::fs::read(&path)?;
                raw += bytes.len() as u64;
                gz.write_all(&bytes)?;
            }
        }
    }
    Ok((raw, gz.finish()?.len() as u64))
}

/// Readers before writers: the rollup must already read every archive
/// format the new ingest writes.
const PUBLISH_ORDER: [Worker; 3] = [ROLLUP, DASHBOARD_API, INGEST];

/// Publishes everything. Needs `wrangler login` (or CLOUDFLARE_API_TOKEN) and
/// the resources listed in README.md.
pub fn publish() -> Result<()> {
    let root = root();
    let tools = tools::ensure(&root)?;
    workers::build_all(&root, &tools)?;
    check(&bundle(&root)?)?;
    step("applying D1 migrations to the remote database");
    run(wrangler(&root).args(["d1", "migrations", "apply", crate::stack::DATABASE, "--remote", "--env", ROLLUP.name]))?;
    for w in PUBLISH_ORDER {
        step(&format!("deploying {}", w.name));
        run(wrangler(&root).args(["deploy", "--env", w.name]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_every_worker_once_with_the_rollup_before_ingest() {
        let names: Vec<&str> = PUBLISH_ORDER.iter().map(|w| w.name).collect();
        let mut all: Vec<&str> = ALL.iter().map(|w| w.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        all.sort();
        assert_eq!(sorted, all);
        let at = |n: &str| names.iter().position(|&x| x == n);
        assert!(at(ROLLUP.name) < at(INGEST.name));
    }
}
