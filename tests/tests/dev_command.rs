//! `cargo xtask dev`: brings the stack up on the standard ports with the dev
//! keys, keeps its state in `--state`, and stops every process on SIGTERM or
//! as soon as one Worker dies.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORTS: [u16; 3] = [8787, 8788, 8789];

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

fn start(state: &Path, log: &Path) -> Child {
    let bin = std::env::var("E2E_XTASK_BIN").expect("E2E_XTASK_BIN is not set: run the end-to-end tests with `cargo xtask test`");
    let out = std::fs::File::create(log).unwrap();
    Command::new(bin)
        .args(["dev", "--state"])
        .arg(state)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own group, so a failing test can still clean up after it.
        .process_group(0)
        .spawn()
        .expect("starting xtask dev")
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits for `xtask dev` to print its banner, failing at once, with its
/// output, if it exits first or takes too long.
fn wait_for_banner(dev: &mut Child, log: &Path) {
    // Tools and Workers are already built by `cargo xtask test`, so this is
    // migrations plus three `wrangler dev` starts.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !read(log).contains("Press Ctrl-C to stop") {
        if let Some(status) = dev.try_wait().unwrap() {
            panic!("xtask dev exited with {status} before the stack was up:\n{}", read(log));
        }
        assert!(Instant::now() < deadline, "xtask dev was not up within 300 s:\n{}", read(log));
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "xtask dev did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(log: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(log).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Kills the whole group on drop, so a failed assertion leaves nothing behind.
struct Guard(u32);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).status();
        let _ = Command::new("pkill").args(["-KILL", "-f", "xtask-dev-test"]).status();
    }
}

#[test]
fn dev_runs_the_stack_and_always_stops_all_of_it() {
    assert!(PORTS.iter().all(|&p| !listening(p)), "ports 8787-8789 are busy: stop a running `cargo xtask dev` before running the tests");
    let dir = std::env::temp_dir().join(format!("xtask-dev-test-{}", std::process::id()));
    let state = dir.join("state");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("dev.log");

    // Up on the three ports with the documented keys, then SIGTERM stops it.
    let mut dev = start(&state, &log);
    let _guard = Guard(dev.id());
    // The banner comes once every Worker answers, so wait for it, not the ports.
    wait_for_banner(&mut dev, &log);
    assert!(PORTS.iter().all(|&p| listening(p)));
    let banner = read(&log);
    for needle in ["http://127.0.0.1:8787", "http://127.0.0.1:8788", "http://127.0.0.1:8789", "dev-ingest-key", "dev-read-key"] {
        assert!(banner.contains(needle), "the banner lacks {needle}:\n{banner}");
    }
    assert!(state.join("v3").exists(), "local state is kept in --state ({})", state.display());
    let status = Command::new("kill").args(["-TERM", &dev.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(wait_exit(&mut dev, Duration::from_secs(60)).success(), "SIGTERM is a clean stop:\n{}", read(&log));
    wait_for("the ports to close", Duration::from_secs(10), || PORTS.iter().all(|&p| !listening(p)));

    // When one Worker dies, the others are stopped too and dev fails.
    let mut dev = start(&state, &log);
    let _guard2 = Guard(dev.id());
    wait_for_banner(&mut dev, &log);
    let pattern = format!("dev --env rollup.*{}", state.display());
    let killed = Command::new("pkill").args(["-KILL", "-f", &pattern]).status().unwrap();
    assert!(killed.success(), "found the rollup's wrangler");
    let status = wait_exit(&mut dev, Duration::from_secs(60));
    assert!(!status.success());
    assert!(read(&log).contains("rollup stopped"), "{}", read(&log));
    wait_for("the other ports to close", Duration::from_secs(10), || PORTS.iter().all(|&p| !listening(p)));
    let _ = std::fs::remove_dir_all(&dir);
}
