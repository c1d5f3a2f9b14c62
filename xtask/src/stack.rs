//! The local stack: the three Workers under `wrangler dev` (the real workerd
//! runtime with Miniflare's local D1, R2 and Queues), sharing one state folder.
//!
//! Each wrangler runs in its own process group, so that stopping the stack
//! reaches the workerd processes it started too: nothing is left behind, even
//! when a test fails or the stack is interrupted.

use crate::workers::{Worker, ALL, DASHBOARD_API, INGEST, ROLLUP};
use crate::{run, wrangler};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT or SIGTERM once [`stop_on_signals`] is installed.
static STOP: AtomicBool = AtomicBool::new(false);

/// From now on SIGINT (Ctrl-C) and SIGTERM ask the stack to stop instead of
/// killing this process and orphaning the Workers.
pub fn stop_on_signals() -> Result<()> {
    ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).context("installing the signal handler")
}

/// Whether a stop signal has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The dev tenant's keys, documented in README.md.
pub const DEV_TENANT: &str = "dev";
pub const DEV_INGEST_KEY: &str = "dev-ingest-key";
pub const DEV_READ_KEY: &str = "dev-read-key";
/// The local stack's operator key for the rollup's `GET /status`.
pub const DEV_STATUS_KEY: &str = "dev-status-key";

/// The D1 database's name in wrangler.toml.
pub const DATABASE: &str = "telemetry";

/// Where a stack's output goes.
#[derive(Clone, Debug)]
pub enum Logs {
    /// To this terminal, each line prefixed with the Worker's name.
    Terminal,
    /// To `<dir>/<worker>.log`.
    Files(PathBuf),
}

/// How the archive queue's consumer batches its deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deliveries {
    /// As wrangler.toml deploys it: a delivery waits up to
    /// `max_batch_timeout` seconds to fill, which sets how many archives
    /// (R2 puts, rollup reads) a minute makes. `bench-load` measures this.
    AsDeployed,
    /// Within a second, so that tests and `cargo xtask dev` see their
    /// points archived at once.
    Prompt,
}

/// The queue wrangler.toml's archive consumer reads.
const ARCHIVE_QUEUE: &str = "telemetry-archive";

/// wrangler.toml (`text`, in `root`) for ingest with prompt deliveries: the
/// archive consumer's `max_batch_timeout` at 1 s, and `main` absolute so
/// that the copy works from another folder. Everything else is as deployed.
pub fn prompt_config(text: &str, root: &Path) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("parsing wrangler.toml")?;
    let ingest = doc
        .get_mut("env")
        .and_then(|e| e.get_mut(INGEST.name))
        .and_then(|t| t.as_table_like_mut())
        .context("wrangler.toml has no [env.ingest]")?;
    let main = ingest.get("main").and_then(|m| m.as_str()).context("[env.ingest] has no main")?;
    let main = root.join(main).to_str().context("a non-UTF-8 path")?.to_owned();
    ingest.insert("main", toml_edit::value(main));
    let consumers = ingest
        .get_mut("queues")
        .and_then(|q| q.get_mut("consumers"))
        .and_then(|c| c.as_array_of_tables_mut())
        .context("[env.ingest] has no queue consumers")?;
    let archive = consumers
        .iter_mut()
        .find(|c| c.get("queue").and_then(|q| q.as_str()) == Some(ARCHIVE_QUEUE))
        .with_context(|| format!("no consumer of {ARCHIVE_QUEUE}"))?;
    archive.insert("max_batch_timeout", toml_edit::value(1));
    Ok(doc.to_string())
}

/// How to run a stack.
#[derive(Clone, Debug)]
pub struct Options {
    pub state: PathBuf,
    /// Added to the Workers' standard ports (8787-8789).
    pub port_offset: u16,
    /// JSON objects mapping keys to tenants.
    pub ingest_keys: String,
    pub read_keys: String,
    /// Vars to override, as (Worker, name, value).
    pub vars: Vec<(&'static str, String, String)>,
    pub logs: Logs,
    pub deliveries: Deliveries,
}

impl Options {
    /// The dev tenant only, on the standard ports.
    pub fn dev(state: PathBuf) -> Options {
        Options {
            state,
            port_offset: 0,
            ingest_keys: format!(r#"{{"{DEV_INGEST_KEY}":"{DEV_TENANT}"}}"#),
            read_keys: format!(r#"{{"{DEV_READ_KEY}":"{DEV_TENANT}"}}"#),
            vars: Vec::new(),
            logs: Logs::Terminal,
            deliveries: Deliveries::Prompt,
        }
    }
}

/// Base URLs of a running stack.
#[derive(Clone, Debug)]
pub struct Urls {
    pub ingest: String,
    pub rollup: String,
    pub dashboard_api: String,
}

struct Process {
    worker: Worker,
    child: Child,
    log: Option<PathBuf>,
}

/// A running stack; dropping it stops every process.
pub struct Stack {
    processes: Vec<Process>,
    pub urls: Urls,
}

/// `preferred` if it is free, otherwise any free port: a debugger left
/// attached elsewhere must not keep the stack from starting (workerd exits
/// at once if its inspector port is taken).
fn inspector_port(preferred: u16) -> u16 {
    if std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return preferred;
    }
    let any = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr());
    any.map_or(preferred, |a| a.port())
}

fn url(w: Worker, offset: u16) -> String {
    format!("http://127.0.0.1:{}", w.port + offset)
}

/// Rows of a query against the local D1 database in `state`, run with
/// wrangler as an operator would.
///
/// wrangler opens the same SQLite file as the running rollup, so it may find
/// it locked for a moment; it is retried then, as an operator would.
pub fn d1_query(root: &Path, state: &Path, sql: &str) -> Result<Vec<serde_json::Value>> {
    let mut attempts = 0;
    let out = loop {
        let out = wrangler(root)
            .args(["d1", "execute", DATABASE, "--local", "--env", ROLLUP.name, "--json", "--command", sql, "--persist-to"])
            .arg(state)
            .output()?;
        let locked = String::from_utf8_lossy(&out.stderr).contains("SQLITE_BUSY");
        attempts += 1;
        if out.status.success() || !locked || attempts == 20 {
            break out;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if !out.status.success() {
        bail!("wrangler d1 execute failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("wrangler d1 execute --json output")?;
    Ok(json[0]["results"].as_array().cloned().unwrap_or_default())
}

/// Applies `migrations/` to the local D1 database in `state`.
pub fn migrate(root: &Path, state: &Path) -> Result<()> {
    run(wrangler(root).args(["d1", "migrations", "apply", DATABASE, "--local", "--env", ROLLUP.name, "--persist-to"]).arg(state))
        .context("applying D1 migrations")
}

impl Stack {
    /// Starts the three Workers and waits until each answers `GET /`.
    pub fn start(root: &Path, opts: &Options) -> Result<Stack> {
        std::fs::create_dir_all(&opts.state)?;
        let mut stack = Stack {
            processes: Vec::new(),
            urls: Urls {
                ingest: url(INGEST, opts.port_offset),
                rollup: url(ROLLUP, opts.port_offset),
                dashboard_api: url(DASHBOARD_API, opts.port_offset),
            },
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        for (i, w) in ALL.into_iter().enumerate() {
            let mut cmd = wrangler(root);
            cmd.args(["dev", "--env", w.name, "--ip", "127.0.0.1", "--show-interactive-dev-session=false"])
                .args(["--port", &(w.port + opts.port_offset).to_string()])
                // Distinct inspector ports: the default one would clash.
                .args(["--inspector-port", &inspector_port(9230 + opts.port_offset + i as u16).to_string()])
                .arg("--persist-to")
                .arg(&opts.state)
                .stdin(Stdio::null())
                // Its own process group, so a signal reaches workerd too.
                .process_group(0);
            match w.name {
                "ingest" => {
                    cmd.args(["--var", &format!("INGEST_KEYS:{}", opts.ingest_keys)]);
                    if opts.deliveries == Deliveries::Prompt {
                        // Beside the state folder, so that stacks on other ports keep their own.
                        let path = opts.state.with_extension("wrangler.toml");
                        let text = std::fs::read_to_string(root.join("wrangler.toml")).context("reading wrangler.toml")?;
                        std::fs::write(&path, prompt_config(&text, root)?).with_context(|| format!("writing {}", path.display()))?;
                        cmd.arg("--config").arg(&path);
                    }
                }
                "rollup" => {
                    cmd.arg("--test-scheduled").args(["--var", &format!("STATUS_KEY:{DEV_STATUS_KEY}")]);
                }
                _ => {
                    cmd.args(["--var", &format!("READ_KEYS:{}", opts.read_keys)]);
                }
            }
            for (_, name, value) in opts.vars.iter().filter(|(worker, _, _)| *worker == w.name) {
                cmd.args(["--var", &format!("{name}:{value}")]);
            }
            let log = match &opts.logs {
                Logs::Files(dir) => {
                    std::fs::create_dir_all(dir)?;
                    let path = dir.join(format!("{}.log", w.name));
                    let file = File::create(&path)?;
                    cmd.stdout(file.try_clone()?).stderr(file);
                    Some(path)
                }
                Logs::Terminal => {
                    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                    None
                }
            };
            let mut child = cmd.spawn().with_context(|| format!("starting wrangler dev for {}", w.name))?;
            if log.is_none() {
                prefix_lines(w.name, child.stdout.take());
                prefix_lines(w.name, child.stderr.take());
            }
            stack.processes.push(Process { worker: w, child, log });
            // One at a time: the rollup's and dashboard-api's workerd open
            // the same local D1 (SQLite) file, and one that opens it while
            // the other does can die at start with SQLITE_BUSY.
            stack.wait_ready(i, deadline)?;
        }
        Ok(stack)
    }

    /// Waits until the `i`-th Worker answers `GET /`.
    fn wait_ready(&mut self, i: usize, deadline: Instant) -> Result<()> {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
        let url = [&self.urls.ingest, &self.urls.rollup, &self.urls.dashboard_api][i].clone();
        loop {
            if let Some(dead) = self.exited() {
                bail!("{dead} exited while starting{}", self.log_tail(i));
            }
            if stop_requested() {
                bail!("interrupted while starting");
            }
            if matches!(agent.get(&format!("{url}/")).call(), Ok(r) if r.status() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer on {url} within 180 s{}", self.processes[i].worker.name, self.log_tail(i));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The process group (the wrangler's pid) a Worker runs in.
    pub fn group_of(&self, worker: &str) -> Option<u32> {
        self.processes.iter().find(|p| p.worker.name == worker).map(|p| p.child.id())
    }

    /// The name of a Worker whose process has exited, if any.
    pub fn exited(&mut self) -> Option<&'static str> {
        self.processes.iter_mut().find_map(|p| (!matches!(p.child.try_wait(), Ok(None))).then_some(p.worker.name))
    }

    /// The end of a Worker's log file, for error messages.
    pub fn log_tail(&self, i: usize) -> String {
        let Some(path) = self.processes.get(i).and_then(|p| p.log.as_ref()) else { return String::new() };
        let mut text = String::new();
        let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        format!("\n--- last lines of {} ---\n{}", path.display(), lines[lines.len().saturating_sub(40)..].join("\n"))
    }

    /// Stops every process group: SIGTERM, then SIGKILL for what is left.
    pub fn stop(&mut self) {
        for p in self.processes.iter() {
            signal_group(&p.child, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in &mut self.processes {
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            // workerd may outlive wrangler; the group is killed either way.
            signal_group(&p.child, libc::SIGKILL);
            let _ = p.child.wait();
        }
        self.processes.clear();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(child: &Child, sig: libc::c_int) {
    // The child leads its own process group, whose id is its pid.
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

fn prefix_lines(name: &'static str, stream: Option<impl Read + Send + 'static>) {
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_deliveries_change_only_the_archive_consumers_timeout_and_main() {
        let root = crate::root();
        let deployed = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
        let prompt: toml_edit::DocumentMut = prompt_config(&deployed, &root).unwrap().parse().unwrap();
        let deployed: toml_edit::DocumentMut = deployed.parse().unwrap();
        let consumers = |doc: &toml_edit::DocumentMut| {
            doc["env"]["ingest"]["queues"]["consumers"]
                .as_array_of_tables()
                .unwrap()
                .iter()
                .map(|c| (c["queue"].as_str().unwrap().to_owned(), c["max_batch_timeout"].as_integer().unwrap()))
                .collect::<Vec<_>>()
        };
        let (before, after) = (consumers(&deployed), consumers(&prompt));
        assert_eq!(before.len(), after.len());
        for ((queue, deployed), (same, prompt)) in before.iter().zip(&after) {
            assert_eq!(queue, same);
            if queue == ARCHIVE_QUEUE {
                // The deployed value is the bench-load model's choice (docs/PERFORMANCE.md).
                assert_eq!((*deployed, *prompt), (30, 1));
            } else {
                assert_eq!(deployed, prompt, "{queue}");
            }
        }
        let main = prompt["env"]["ingest"]["main"].as_str().unwrap();
        assert_eq!(Path::new(main), root.join("ingest/build/worker/shim.mjs"));
        assert_eq!(prompt["env"]["ingest"]["vars"].to_string(), deployed["env"]["ingest"]["vars"].to_string());
        assert_eq!(prompt["env"]["rollup"].to_string(), deployed["env"]["rollup"].to_string());
    }

    #[test]
    fn a_taken_inspector_port_is_replaced_by_a_free_one() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let other = inspector_port(port);
        assert_ne!(other, port);
        assert!(std::net::TcpListener::bind(("127.0.0.1", other)).is_ok());
        drop(taken);
        assert_eq!(inspector_port(port), port);
    }
}
