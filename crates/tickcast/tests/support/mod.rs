//! What tickcast's integration tests share, written once:
//!
//! - [`Client`]: an independent WebSocket client (tokio-tungstenite), generic over its stream, so
//!   the same client speaks ws:// over TCP and wss:// over TLS ([`Client::connect_tls`]);
//! - [`RawClient`] and the frame builder (`frame.rs`): masked client frames built by hand, for what
//!   tungstenite refuses to send, and unmasked server frames read back;
//! - [`Metrics`]: a `/metrics` scrape parsed once into a map, looked up by sample name and labels;
//! - [`TestCert`]: a self-signed certificate and key in a temp dir, the rustls client config that
//!   trusts it, and an acceptor for test servers that present it;
//! - [`sse_open`]: an independent Server-Sent Events client over a raw socket;
//! - [`SeqLedger`]: checks that a stream's seqs skip only where a `gap` marker said so;
//! - [`BookBuilder`]: an order book of the test's own, checking every `book` message's checksum;
//! - [`wait_until`] and its variants: bounded polling with a sync or an async predicate;
//! - [`NatsServer`]: a real `nats-server -js` on a free port (scale-out and failover tests);
//! - plain HTTP requests, the real binary as a child process, temp dirs, fixtures and feeds.
//!
//! Servers are started through `tickcast::test_support::start_server`, always on 127.0.0.1:0.
#![allow(dead_code, unused_imports)]

mod book;
mod client;
mod frame;
mod http;
mod ledger;
mod metrics;
mod nats;
mod raw;
mod sse;
mod tls;
mod wait;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use book::BookBuilder;
pub use client::{Client, Event};
pub use frame::{masked, masked_text, read_frame_from, unmasked, upgrade_request, MASK};
pub use http::{http_get, http_get_addr, http_get_over, http_request, try_http_get_addr};
pub use ledger::SeqLedger;
pub use metrics::{
    metric, metric_at, metrics, metrics_at, wait_for_metric, wait_for_open, Metrics,
};
pub use nats::{nats_gateway, nats_gateway_with, NatsServer};
pub use raw::{upgrade_over, RawClient};
pub use sse::{sse_open, sse_open_with, SseEvent, SseOpen, SseStream};
pub use tickcast::test_support::{start_server, RunningServer};
pub use tls::{https_get, tls_connect, TestCert};
pub use wait::{
    poll_for, poll_until, poll_until_async, wait_for, wait_until, wait_until_async,
    wait_until_blocking, wait_until_within,
};

/// Upper bound for any single wait in these tests; they never depend on timing otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// Resident memory (VmRSS) of process `pid` ("self" for this one: the in-process server plus the
/// test clients), in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A free loopback port: bound, then released for the process under test to take.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// The workspace root (for the shipped config, dashboards and docker files).
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A file of `tests/fixtures/`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fresh directory under the system temp dir, unique in this process; removed (with what the
/// test put in it) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tickcast-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` in this directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `content` to `name` in this directory; returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills (and reaps) a child process when dropped, so a failing test leaves nothing running.
pub struct Reaped(pub Option<std::process::Child>);

impl Reaped {
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The real `tickcast` binary listening on `listen`, stdin closed; the caller adds arguments and
/// chooses where its output goes.
pub fn tickcast_command(listen: SocketAddr) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    cmd.args(["--listen", &listen.to_string()])
        .stdin(Stdio::null());
    cmd
}

/// Waits (bounded, 3 × [`WAIT`]) until something accepts TCP connections on `addr`: a spawned
/// binary has bound its port.
pub async fn wait_for_listener(addr: SocketAddr) {
    wait_until_async(&format!("tickcast listens on {addr}"), 3 * WAIT, || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
}

/// Raises the open-file soft limit for tests that open many sockets.
pub fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// The server's view of a topic's latest seq.
pub fn last_seq(server: &RunningServer, topic: &str) -> u64 {
    server
        .running()
        .state()
        .bus
        .get(topic)
        .and_then(|t| t.last())
        .map_or(0, |l| l.seq.0)
}

/// Waits (bounded) until `topic` has published at least `seq`.
pub async fn wait_for_seq(server: &RunningServer, topic: &str, seq: u64) {
    wait_until(&format!("{topic} reaches seq {seq}"), || {
        last_seq(server, topic) >= seq
    })
    .await;
}

/// Sets the synthetic feed of a test config.
pub fn feed(config: &mut tickcast::Config, symbols: &[&str], rate: f64) {
    use tickcast::config::Overrides;
    use tickcast_ingest::synthetic::Symbols;
    config
        .apply(Overrides {
            symbols: Some(Symbols::List(
                symbols.iter().map(|s| s.to_string()).collect(),
            )),
            rate: Some(rate),
            ..Default::default()
        })
        .expect("valid feed");
}

/// The `[[feeds]]` of a TOML snippet, so tests read like the config file.
pub fn feeds(toml: &str) -> Vec<tickcast::config::FeedConfig> {
    tickcast::Config::from_toml(toml)
        .expect("valid feeds")
        .feeds
}

/// One NDJSON tick as a publisher sends it (no newline).
pub fn tick_line(topic: &str, bid: f64, ask: f64, last: f64, size: f64) -> String {
    format!(r#"{{"topic":"{topic}","bid":{bid},"ask":{ask},"last":{last},"size":{size}}}"#)
}

/// A publisher connected to the server's TCP feed called `feed`.
pub async fn tcp_publisher(server: &RunningServer, feed: &str) -> tokio::net::TcpStream {
    let addr = server.running().feed_addr(feed).expect("tcp feed address");
    tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to tcp feed")
}

/// The stats of the server's feed called `name`.
pub fn feed_stats(
    server: &RunningServer,
    name: &str,
) -> std::sync::Arc<tickcast_ingest::FeedStats> {
    server
        .running()
        .feeds()
        .all()
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no feed {name}"))
}
