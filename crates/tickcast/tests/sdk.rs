//! Client SDK tests: runs `pytest` in `clients/python/` and `npm test` (tsc, then `node --test`) in `clients/js/`,
//! each SDK against real tickcast servers its tests start on free loopback ports, with `TICKCAST_BIN` pointing at
//! this build's binary.
//!
//! Prerequisites (installing them is `.ci/test-all`'s job): the venv `clients/python/.venv` with the package and
//! its test extras; `node` and `npm ci` in `clients/js/`. When one is missing its test is skipped with a loud
//! message, unless `CI` is set: then it fails.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::repo_root;

/// Upper bound for one SDK's whole test run (each test has its own 30 s limit; packaging tests more).
const DEADLINE: Duration = Duration::from_secs(300);

/// Whether a prerequisite is present; when it is not: skip loudly, or panic under `CI`.
fn present(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    let msg = format!("SDK test prerequisite missing: {what} (run .ci/test-all to install it)");
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

#[test]
fn python_sdk_pytest() {
    let dir = repo_root().join("clients/python");
    let python = dir.join(".venv/bin/python");
    if !present("clients/python/.venv", Path::new(&python).is_file()) {
        return;
    }
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"]);
    run_bounded(cmd, &dir, "pytest");
}

#[test]
fn js_sdk_node_test() {
    let dir = repo_root().join("clients/js");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present("node", node_ok)
        || !present(
            "npm ci in clients/js",
            dir.join("node_modules/typescript").is_dir(),
        )
    {
        return;
    }
    let mut cmd = Command::new("npm");
    cmd.args(["test", "--silent"]);
    run_bounded(cmd, &dir, "npm test");
}

/// Runs an SDK's test command in dir with this build's binary, bounded by [`DEADLINE`]; panics unless it succeeds.
fn run_bounded(mut cmd: Command, dir: &Path, what: &str) {
    let mut child = cmd
        .current_dir(dir)
        .env("TICKCAST_BIN", env!("CARGO_BIN_EXE_tickcast"))
        .env("CI", "1")
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(DEADLINE).is_err() {
        // Kill by the pid we spawned (never by name); the waiter then returns.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("{what} did not finish within {DEADLINE:?}");
    }
    let status = waiter
        .join()
        .expect("waiter")
        .expect("wait for the test command");
    assert!(status.success(), "{what} failed: {status}");
}
