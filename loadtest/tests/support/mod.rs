//! Helpers shared by the load generator's integration tests: run the real binary with a watchdog,
//! check that it succeeded and read its JSON report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

/// The load generator binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_tickcast-loadgen");

/// A free loopback port: bound, then released (nothing listens there afterwards).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A per-process path in the temp dir for a test's report or plot.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tickcast-loadgen-{}-{name}", std::process::id()))
}

/// Runs the binary to completion (bounded by its own settings plus a 60 s watchdog, so a hang
/// never stalls the suite).
pub async fn run_loadgen(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tickcast-loadgen");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("tickcast-loadgen did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("collect output")
    })
    .await
    .expect("join")
}

/// Asserts that a run succeeded (showing its stderr and stdout if not); its stdout.
pub fn assert_success(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {stderr}\n{stdout}");
    stdout.into_owned()
}

/// The JSON report a run wrote to `path` (`--json-out`).
pub fn read_report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("report is JSON")
}
