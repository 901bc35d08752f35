//! Bad arguments end with exactly one clear line on stderr and a non-zero exit, never a panic.

use std::process::Command;

mod support;

use support::{free_port, BIN};

/// Runs the binary and returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--no-progress", "--duration", "1", "--warmup", "0"])
        .output()
        .expect("run tickcast-loadgen");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, err) = run(args);
    assert!(
        matches!(code, Some(c) if c != 0),
        "{args:?}: exit {code:?}, stderr {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: {needle:?} not in {err}"
    );
}

#[test]
fn zero_connections() {
    assert_one_line_error(&["--conns", "0"], "--conns must be at least 1");
}

#[test]
fn unknown_scenario() {
    assert_one_line_error(&["--scenario", "no-such-scenario"], "unknown scenario");
}

#[test]
fn unreachable_url() {
    // A port that was just free: nothing listens there.
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    assert_one_line_error(&["--url", &url, "--conns", "1"], "cannot connect");
}

#[test]
fn non_loopback_target_is_refused() {
    assert_one_line_error(&["--url", "ws://192.0.2.1:80/ws"], "non-loopback");
    assert_one_line_error(&["--src-ips", "10.0.0.1"], "non-loopback");
}

#[test]
fn malformed_flags() {
    assert_one_line_error(&["--conns", "lots"], "--conns");
    assert_one_line_error(&["--no-such-flag"], "--no-such-flag");
    assert_one_line_error(&["--url", "http://127.0.0.1/ws"], "ws://");
    assert_one_line_error(&["--per-conn", "500", "--topics", "100"], "--per-conn");
    assert_one_line_error(&["--mode", "publish"], "--publish-addr");
}

#[test]
fn help_and_scenarios_succeed() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN).arg("--list-scenarios").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "smoke",
        "fanout-1k",
        "fanout-10k",
        "slow-consumers",
        "c50k",
        "soak",
    ] {
        assert!(text.contains(name), "{name} listed: {text}");
    }
    let out = Command::new(BIN)
        .args(["--scenario", "c50k", "--print-server-args"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "--symbols 1000 --rate 1000"
    );
}
