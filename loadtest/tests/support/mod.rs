//! Helpers shared by the load generator's integration tests: run the real binary with a watchdog.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tickcast-loadgen");

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
