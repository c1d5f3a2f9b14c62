//! Installs what the build needs, pinned, and only what is missing.
//!
//! worker-build's own downloads (wasm-bindgen, wasm-opt from GitHub) cannot
//! work offline, so both are installed from the registries and handed to it
//! through `WASM_BINDGEN_BIN` and `WASM_OPT_BIN`.

use crate::{output, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// worker-build, matching the `worker` crate's version.
pub const WORKER_BUILD_VERSION: &str = "0.8.7";

/// Where the tools are, once installed.
#[derive(Clone, Debug)]
pub struct Tools {
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub wasm_opt: PathBuf,
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

/// Ensures every tool is present at its pinned version.
pub fn ensure(root: &Path) -> Result<Tools> {
    wasm_target()?;
    let worker_build = cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION)?;
    let bindgen_version = wasm_bindgen_version(&std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?)
        .context("Cargo.lock has no wasm-bindgen entry")?;
    let wasm_bindgen = cargo_tool("wasm-bindgen-cli", "wasm-bindgen", &bindgen_version)?;
    node_modules(root)?;
    let wasm_opt = root.join("node_modules/.bin/wasm-opt");
    Ok(Tools { worker_build, wasm_bindgen, wasm_opt })
}

fn wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        return Ok(());
    }
    step("installing the wasm32-unknown-unknown target");
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// Installs `krate` at `version` with `cargo install` unless `bin` already
/// reports that version.
fn cargo_tool(krate: &str, bin: &str, version: &str) -> Result<PathBuf> {
    let path = cargo_bin(bin);
    let current = output(Command::new(&path).arg("--version")).unwrap_or_default();
    if current.split_whitespace().any(|w| w.trim_start_matches('v') == version) {
        return Ok(path);
    }
    step(&format!("installing {krate} {version} (a few minutes, once)"));
    let locked = Command::new("cargo").args(["install", krate, "--version", version, "--locked", "--force"]).status();
    if !matches!(locked, Ok(s) if s.success()) {
        // A crate's own lock file can pin a dependency version the registry
        // no longer serves (wasm-bindgen-cli 0.2.130 pins a yanked
        // webpki-roots); resolving afresh within the same version still
        // gives the pinned tool.
        eprintln!("`cargo install --locked` failed; retrying with fresh dependency resolution");
        run(Command::new("cargo").args(["install", krate, "--version", version, "--force"]))?;
    }
    Ok(path)
}

/// The `wasm-bindgen` version in a Cargo.lock: the CLI must match it exactly.
pub fn wasm_bindgen_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "wasm-bindgen""# {
            let v = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(v.to_owned());
        }
    }
    None
}

/// `npm ci` from the committed lock file, when `node_modules` does not match it.
fn node_modules(root: &Path) -> Result<()> {
    let node = output(Command::new("node").arg("--version"))
        .context("Node.js is required (wrangler runs on it): install Node.js 20.3 or newer with npm")?;
    if !node_at_least(node.trim(), (20, 3)) {
        bail!("wrangler needs Node.js 20.3 or newer; found {}", node.trim());
    }
    let lock = std::fs::read(root.join("package-lock.json")).context("reading package-lock.json")?;
    let stamp = root.join("node_modules/.xtask-lock-stamp");
    let want = stamp_of(&lock);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && root.join("node_modules/.bin/wrangler").exists() {
        return Ok(());
    }
    step("installing wrangler and wasm-opt (npm ci)");
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root))?;
    std::fs::write(&stamp, want)?;
    Ok(())
}

/// A virtualenv at `target/e2e/venv` with the pinned OpenTelemetry Python
/// SDK (`tests/python/requirements.txt`), for the real-client tests. Returns
/// its `python`.
pub fn python_sdk(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/e2e/venv");
    let python = venv.join("bin/python");
    let requirements = std::fs::read(root.join("tests/python/requirements.txt")).context("reading tests/python/requirements.txt")?;
    let stamp = venv.join(".xtask-requirements-stamp");
    let want = stamp_of(&requirements);
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(python);
    }
    step("installing the OpenTelemetry Python SDK into target/e2e/venv (pip)");
    let python3 = if output(Command::new("python3").arg("--version")).is_some() { "python3" } else { "python" };
    run(Command::new(python3).args(["-m", "venv"]).arg(&venv))
        .context("creating a Python virtualenv (needs Python 3 with the venv module)")?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(root.join("tests/python/requirements.txt")))?;
    std::fs::write(&stamp, want)?;
    Ok(python)
}

/// Debian's `prometheus` package, for `promtool` (Prometheus' own API client)
/// in the compatibility tests: this version, from bookworm.
pub const PROMETHEUS_DEB_VERSION: &str = "2.42.0+ds-5+b6";
/// The same package from the Debian pool, and its SHA-256, for machines
/// whose apt has no Debian index.
const PROMETHEUS_DEB_URL: &str = "http://deb.debian.org/debian/pool/main/p/prometheus/prometheus_2.42.0+ds-5+b6_amd64.deb";
const PROMETHEUS_DEB_SHA256: &str = "3b0e0255b059a7696bd4a139a4a4eb24d71df067936a61ece5093559cbc7991c";

/// `promtool`, unpacked from the pinned Debian `prometheus` package into
/// `target/e2e/prometheus`: nothing is installed system-wide and no
/// Prometheus server runs. Returns its path.
pub fn promtool(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/e2e/prometheus");
    let bin = dir.join("usr/bin/promtool");
    let upstream = PROMETHEUS_DEB_VERSION.split('+').next().unwrap_or(PROMETHEUS_DEB_VERSION);
    if output(Command::new(&bin).arg("--version")).is_some_and(|v| v.contains(&format!("version {upstream}"))) {
        return Ok(bin);
    }
    step(&format!("installing promtool from Debian's prometheus {PROMETHEUS_DEB_VERSION} (19 MB, once)"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let download = dir.join("download");
    std::fs::create_dir_all(&download)?;
    // apt checks the package against the machine's signed Debian index.
    let apt =
        Command::new("apt-get").args(["download", "-q", &format!("prometheus={PROMETHEUS_DEB_VERSION}")]).current_dir(&download).status();
    let from_apt =
        std::fs::read_dir(&download)?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb"));
    let deb = match (apt, from_apt) {
        (Ok(status), Some(deb)) if status.success() => deb,
        _ => {
            // No apt or no Debian index: the pinned file from the pool,
            // checked against its pinned hash.
            eprintln!("apt-get download failed; fetching {PROMETHEUS_DEB_URL}");
            let deb = download.join("prometheus.deb");
            run(Command::new("curl").args(["-fsSL", "--retry", "3", "-o"]).arg(&deb).arg(PROMETHEUS_DEB_URL))
                .context("downloading Debian's prometheus package (needs curl and access to deb.debian.org)")?;
            let sum = output(Command::new("sha256sum").arg(&deb)).context("running sha256sum")?;
            if sum.split_whitespace().next() != Some(PROMETHEUS_DEB_SHA256) {
                bail!("{PROMETHEUS_DEB_URL} does not have the pinned SHA-256 {PROMETHEUS_DEB_SHA256}: {sum}");
            }
            deb
        }
    };
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir)).context("unpacking the package (needs dpkg-deb)")?;
    std::fs::remove_dir_all(&download)?;
    output(Command::new(&bin).arg("--version")).with_context(|| format!("{} does not run", bin.display()))?;
    Ok(bin)
}

fn node_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (m, n) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (m, n) >= (major, minor)
}

/// A stamp recording which version of a file an install was made from.
fn stamp_of(bytes: &[u8]) -> String {
    proto::hash::hex128(&[bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wasm_bindgen_version_from_the_lock_file() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"x\"\n";
        assert_eq!(wasm_bindgen_version(lock).as_deref(), Some("0.2.130"));
        assert_eq!(wasm_bindgen_version("name = \"wasm-bindgen-macro\"\nversion = \"1\""), None);
    }

    #[test]
    fn the_workspace_lock_pins_the_wasm_bindgen_the_tools_install() {
        let lock = std::fs::read_to_string(crate::root().join("Cargo.lock")).unwrap();
        assert!(wasm_bindgen_version(&lock).is_some());
    }

    #[test]
    fn node_versions() {
        assert!(node_at_least("v20.20.2", (20, 3)));
        assert!(node_at_least("v22.0.0", (20, 3)));
        assert!(!node_at_least("v20.2.0", (20, 3)));
        assert!(!node_at_least("v18.19.0", (20, 3)));
    }
}
