//! Client SDK tests: runs `pytest` in `clients/python/` (the Python SDK against real tickcast servers the
//! tests start on free loopback ports) with `TICKCAST_BIN` pointing at this build's binary.
//!
//! Prerequisite (installing it is `.ci/test-all`'s job): the venv `clients/python/.venv` with the package and
//! pytest. When it is missing the test is skipped with a loud message, unless `CI` is set: then it fails.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::repo_root;

/// Upper bound for the whole pytest run (each test has its own 30 s limit).
const PYTEST_DEADLINE: Duration = Duration::from_secs(300);

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
    let mut child = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&dir)
        .env("TICKCAST_BIN", env!("CARGO_BIN_EXE_tickcast"))
        .env("CI", "1")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn pytest");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(PYTEST_DEADLINE).is_err() {
        // Kill by the pid we spawned (never by name); the waiter then returns.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("pytest did not finish within {PYTEST_DEADLINE:?}");
    }
    let status = waiter.join().expect("waiter").expect("wait pytest");
    assert!(status.success(), "pytest failed: {status}");
}
