//! Real-browser test of the embedded market board (`dashboards/web/`).
//!
//! Spawns the real `tickcast` binary on a free loopback port, then runs
//! `node dashboards/web/test/board.test.mjs http://127.0.0.1:PORT OUTDIR`, which drives Debian's headless
//! `/usr/bin/chromium` through `playwright-core`. What the page cannot do itself is coordinated over the node
//! child's stdio, one command line on its stdout answered by one line on its stdin:
//!
//! - `RESTART_SERVER` → `SERVER_RESTARTED`: this side stops the server (SIGTERM, then SIGKILL if it lingers), starts
//!   it again on the SAME port and waits for `/healthz`;
//! - `PUBLISH <topic> <n>` → `PUBLISHED`: n ticks of topic go to the server's `tcp` feed through one publisher
//!   connection, kept open (connected on first use);
//! - `FEED_DOWN` → `FEED_IS_DOWN`: that publisher disconnects, the feed's only one, so its topics' heartbeats say
//!   `feed_up: false`.
//!
//! The main test's server has, besides the synthetic feed, that `tcp` feed and a small socket send buffer, so a
//! tab that stops reading meets the `conflate` policy after a few hundred KB (see [`MAIN_CONFIG`]).
//!
//! Screenshots land in `target/test-output/browser/` under the workspace root.
//!
//! Prerequisites (installing them is the test command's job, not this test's): `/usr/bin/chromium`
//! (`apt-get install -y chromium`), `node`, and `npm ci` in `dashboards/web/test/`. When one is missing the test is
//! skipped with a loud message, unless `CI` is set: then it fails.
//!
//! Uses std threads + channels for bounded waits; the free port, the child guard, the command that
//! runs the binary and the metrics parser come from `support`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};
use support::{free_port, repo_root, tickcast_command, wait_until_blocking, Metrics, Reaped};

const CHROMIUM: &str = "/usr/bin/chromium";
const SYMBOLS: &str = "AAPL,MSFT,GOOGL,AMZN";
/// Upper bound for the whole node run (its own watchdog is 150 s).
const NODE_DEADLINE: Duration = Duration::from_secs(180);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// The main test's server: the synthetic feed (its symbols and rate from the command line), a `tcp` feed the
/// test publishes to (`{tcp_port}`), and a 32 KiB socket send buffer instead of the kernel's autotuned megabytes,
/// so a burst to a tab that stops reading fills its queue and is conflated (the queue keeps its defaults).
const MAIN_CONFIG: &str = r#"[server]
socket_send_buffer_bytes = 32768

[[feeds]]
kind = "synthetic"
name = "synthetic"

[[feeds]]
kind = "tcp"
name = "pub"
listen = "127.0.0.1:{tcp_port}"
required = false
"#;

/// The detail view test's server: the synthetic feed (symbols and tick rate from the command line) with
/// busier books (3,000 changes/s over its symbols), and a 32 KiB socket send buffer, so a tab that
/// stops reading for a few seconds has its book resynced (a `resync` gap marker and a snapshot).
const DETAIL_CONFIG: &str = r#"[server]
socket_send_buffer_bytes = 32768

[[feeds]]
kind = "synthetic"
name = "synthetic"
market_rate = 3000
"#;

struct Server {
    port: u16,
    out_dir: PathBuf,
    /// Arguments after the defaults (e.g. `--config auth.toml`).
    extra_args: Vec<String>,
    generation: u32,
    proc: Reaped,
}

impl Server {
    fn start(port: u16, out_dir: &Path, extra_args: &[&str]) -> Server {
        let mut s = Server {
            port,
            out_dir: out_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            generation: 0,
            proc: Reaped(None),
        };
        s.spawn_until_healthy();
        s
    }

    fn log_path(&self) -> PathBuf {
        self.out_dir.join(format!("server-{}.log", self.generation))
    }

    fn spawn(&mut self) {
        self.generation += 1;
        let log = std::fs::File::create(self.log_path()).expect("create server log");
        let child = tickcast_command(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .args(["--symbols", SYMBOLS, "--rate", "200"])
            .args(&self.extra_args)
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn tickcast");
        self.proc = Reaped(Some(child));
    }

    /// Spawns the server and waits for `GET /healthz` to answer 200. Respawns if the process exits early (e.g. the
    /// port is briefly still held after a restart). Panics, with the server log, when the deadline passes.
    fn spawn_until_healthy(&mut self) {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        self.spawn();
        loop {
            if healthz(self.port) {
                return;
            }
            if let Ok(Some(status)) = self.proc.child().try_wait() {
                if Instant::now() >= deadline {
                    panic!(
                        "tickcast exited with {status} before /healthz answered\n{}",
                        self.log_tail()
                    );
                }
                eprintln!("[browser.rs] tickcast exited early ({status}); respawning");
                thread::sleep(Duration::from_millis(300));
                self.spawn();
                continue;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tickcast did not answer /healthz on port {} within {HEALTH_TIMEOUT:?}\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Graceful stop (SIGTERM), then SIGKILL after 5 s.
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.proc.0.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("[browser.rs] tickcast ignored SIGTERM for 5 s; killing it");
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    fn restart(&mut self) {
        let t0 = Instant::now();
        let st = self.stop();
        eprintln!("[browser.rs] server stopped ({st:?}); starting it again on the same port");
        self.spawn_until_healthy();
        eprintln!("[browser.rs] server back after {:?}", t0.elapsed());
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} ---\n{}",
            self.log_path().display(),
            lines[from..].join("\n")
        )
    }
}

/// One publisher connection to the server's `tcp` feed, opened on first use and kept until
/// [`Publisher::disconnect`].
struct Publisher {
    port: u16,
    conn: Option<TcpStream>,
    /// Ticks sent per topic, for distinct prices.
    sent: u64,
}

impl Publisher {
    fn new(port: u16) -> Publisher {
        Publisher {
            port,
            conn: None,
            sent: 0,
        }
    }

    /// Sends `n` ticks of `topic` (NDJSON, one write per batch of lines).
    fn publish(&mut self, topic: &str, n: u64) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let conn = self.conn.get_or_insert_with(|| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .expect("connect to the tcp feed");
            s.set_write_timeout(Some(Duration::from_secs(10)))
                .expect("write timeout");
            s
        });
        let mut batch = String::new();
        for _ in 0..n {
            self.sent += 1;
            let last = 100.0 + (self.sent % 1000) as f64 / 100.0;
            batch.push_str(&format!(
                r#"{{"topic":"{topic}","bid":{:.2},"ask":{:.2},"last":{last:.2},"size":{}}}"#,
                last - 0.01,
                last + 0.01,
                1 + self.sent % 100
            ));
            batch.push('\n');
            if batch.len() >= 64 * 1024 {
                conn.write_all(batch.as_bytes())
                    .expect("write to the tcp feed");
                batch.clear();
            }
        }
        conn.write_all(batch.as_bytes())
            .expect("write to the tcp feed");
        conn.flush().expect("flush the tcp feed");
    }

    /// Closes the connection: the feed has no publisher left.
    fn disconnect(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// `GET path` with `Connection: close`; the whole response, or `None` when the server is not there.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = Vec::new();
    // Bounded by the read timeout; a partial response is returned as it is.
    let _ = s.read_to_end(&mut body);
    Some(String::from_utf8_lossy(&body).into_owned())
}

fn healthz(port: u16) -> bool {
    http_get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

fn node_ok() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The node test directory when every prerequisite is there; `None` (test skipped, loudly) when one is
/// missing, unless `CI` is set: then it panics.
fn prerequisites(test: &str) -> Option<PathBuf> {
    let test_dir = repo_root().join("dashboards/web/test");
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install -y chromium)"));
    }
    if !node_ok() {
        missing.push("node on PATH".to_string());
    }
    if !test_dir.join("node_modules/playwright-core").exists() {
        missing.push(format!(
            "{}/node_modules/playwright-core (run `npm ci` there)",
            test_dir.display()
        ));
    }
    if missing.is_empty() {
        return Some(test_dir);
    }
    let msg = format!("browser test prerequisites missing: {}", missing.join("; "));
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! SKIPPED {test}: {msg}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    None
}

/// A fresh output directory: stale screenshots from an earlier run must not satisfy the checks.
fn clean_out_dir(out_dir: &Path) {
    std::fs::create_dir_all(out_dir).expect("create test output dir");
    for entry in std::fs::read_dir(out_dir)
        .expect("read test output dir")
        .flatten()
    {
        if entry.path().extension().is_some_and(|e| e == "png") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Runs `board.test.mjs` against `server` with `env`, restarting the server and publishing to its
/// `tcp` feed through `publisher` whenever the script asks (see the module docs); returns how many
/// restarts it asked for. Panics when the script fails or the server died.
fn run_board_script(
    test_dir: &Path,
    out_dir: &Path,
    server: &mut Server,
    publisher: Option<&mut Publisher>,
    env: &[(&str, &str)],
) -> u32 {
    let base = format!("http://127.0.0.1:{}", server.port);
    run_script(
        "board.test.mjs",
        &base,
        test_dir,
        out_dir,
        server,
        publisher,
        None,
        env,
    )
}

/// Runs the node test `script` with `base` (the URL the page loads), answering its commands (see
/// the module docs; `CUT` resets every connection `proxy` carries).
#[allow(clippy::too_many_arguments)]
fn run_script(
    script: &str,
    base: &str,
    test_dir: &Path,
    out_dir: &Path,
    server: &mut Server,
    mut publisher: Option<&mut Publisher>,
    proxy: Option<&Proxy>,
    env: &[(&str, &str)],
) -> u32 {
    eprintln!(
        "[browser.rs] tickcast up at {base}; screenshots -> {}",
        out_dir.display()
    );
    let mut node = Reaped(Some(
        Command::new("node")
            .arg(test_dir.join(script))
            .arg(base)
            .arg(out_dir)
            .envs(env.iter().copied())
            .current_dir(test_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node"),
    ));
    let mut node_stdin = node.child().stdin.take().expect("node stdin");
    let node_stdout = node.child().stdout.take().expect("node stdout");

    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(node_stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + NODE_DEADLINE;
    let mut restarts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.trim() == "RESTART_SERVER" => {
                restarts += 1;
                if let Some(p) = publisher.as_deref_mut() {
                    p.disconnect(); // its server goes away; a later PUBLISH connects again
                }
                server.restart();
                answer(&mut node_stdin, "SERVER_RESTARTED");
            }
            Ok(line) if line.trim() == "CUT" => {
                proxy
                    .unwrap_or_else(|| panic!("{script} asked for CUT without a proxy"))
                    .cut();
                answer(&mut node_stdin, "CUT_DONE");
            }
            Ok(line) if line.starts_with("PUBLISH ") || line.trim() == "FEED_DOWN" => {
                let publisher = publisher
                    .as_deref_mut()
                    .unwrap_or_else(|| panic!("{line:?}: this server has no tcp feed"));
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    ["PUBLISH", topic, n] => {
                        publisher.publish(topic, n.parse().expect("PUBLISH <topic> <count>"));
                        answer(&mut node_stdin, "PUBLISHED");
                    }
                    ["FEED_DOWN"] => {
                        publisher.disconnect();
                        answer(&mut node_stdin, "FEED_IS_DOWN");
                    }
                    _ => panic!("malformed command from {script}: {line:?}"),
                }
            }
            Ok(line) => eprintln!("[{script} stdout] {line}"),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{script} did not finish within {NODE_DEADLINE:?}\n{}",
                    server.log_tail()
                );
            }
        }
    }
    let _ = reader.join();

    // stdout closed: the script is exiting; give it a bounded moment.
    let mut status = None;
    wait_until_blocking(
        "node exits after closing stdout",
        Duration::from_secs(15),
        || {
            status = node.child().try_wait().expect("wait node");
            status.is_some()
        },
    );
    let status = status.expect("node exited");
    drop(node_stdin);

    let server_exit = server.proc.child().try_wait().expect("try_wait server");
    assert!(
        server_exit.is_none(),
        "tickcast died during the browser test: {server_exit:?}\n{}",
        server.log_tail()
    );
    assert!(
        status.success(),
        "{script} failed ({status}); screenshots and server logs in {}\n{}",
        out_dir.display(),
        server.log_tail()
    );
    restarts
}

fn answer(node_stdin: &mut impl Write, line: &str) {
    writeln!(node_stdin, "{line}").expect("write to node stdin");
    node_stdin.flush().expect("flush node stdin");
}

fn assert_screenshots(out_dir: &Path, shots: &[&str]) {
    for shot in shots {
        let p = out_dir.join(shot);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", p.display());
    }
}

#[test]
fn market_board_in_headless_chromium() {
    let Some(test_dir) = prerequisites("market_board_in_headless_chromium") else {
        return;
    };
    let out_dir = repo_root().join("target/test-output/browser");
    clean_out_dir(&out_dir);
    let tcp_port = free_port();
    let config = out_dir.join("main.toml");
    std::fs::write(
        &config,
        MAIN_CONFIG.replace("{tcp_port}", &tcp_port.to_string()),
    )
    .expect("write main config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(free_port(), &out_dir, &["--config", &config]);
    let mut publisher = Publisher::new(tcp_port);
    let restarts = run_board_script(&test_dir, &out_dir, &mut server, Some(&mut publisher), &[]);
    assert_eq!(
        restarts, 1,
        "the board test should ask for exactly one server restart"
    );
    assert_screenshots(
        &out_dir,
        &[
            "01-live.png",
            "02-errors.png",
            "03-reconnected.png",
            "04-phone.png",
            "07-feed-down.png",
            "08-conflated.png",
        ],
    );
    server.stop();
}

/// With authentication on, the board shows a sign-in form when the server refuses it, connects with
/// the key typed there (sent as the `bearer.` subprotocol), and a `#token=` link signs a tab in.
#[test]
fn market_board_signs_in_when_the_server_requires_a_key() {
    let Some(test_dir) = prerequisites("market_board_signs_in_when_the_server_requires_a_key")
    else {
        return;
    };
    let out_dir = repo_root().join("target/test-output/browser/auth");
    clean_out_dir(&out_dir);
    let key = "board-test-key-7f3a9c2e41d8";
    let config = out_dir.join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nenabled = true\n\n[[auth.api_keys]]\nkey = \"{key}\"\ntopics = [\"ticker.*\"]\n"
        ),
    )
    .expect("write auth config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(free_port(), &out_dir, &["--config", &config]);
    let restarts = run_board_script(
        &test_dir,
        &out_dir,
        &mut server,
        None,
        &[("BOARD_TEST_AUTH_KEY", key)],
    );
    assert_eq!(restarts, 0);
    assert_screenshots(&out_dir, &["05-sign-in.png", "06-signed-in.png"]);
    // The server saw what the page did: refusals without and with a wrong credential.
    let metrics = Metrics::parse(&http_get(server.port, "/metrics").expect("GET /metrics"));
    for reason in ["missing_credentials", "invalid_api_key"] {
        let failures = metrics.get("tickcast_auth_failures_total", &[("reason", reason)]);
        assert!(
            failures >= Some(1.0),
            "tickcast_auth_failures_total{{reason=\"{reason}\"}} >= 1 expected: {failures:?}"
        );
    }
    server.stop();
}

/// The symbol detail view against the real server and its synthetic feed: selecting a symbol opens a
/// book ladder whose checksums the page verifies (at least `DETAIL_TEST_MIN_CHECKSUMS`, 30 by default,
/// with no mismatch), a trade tape and 1 s candles; a corrupted copy of the book is caught and
/// resynced; a tab that falls behind gets the server's resync (gap, snapshot) and verifies on;
/// switching and closing unsubscribe. Screenshots land in
/// `target/test-output/browser/detail/` (`10-detail.png` .. `16-resync.png`).
#[test]
fn symbol_detail_view_in_headless_chromium() {
    let Some(test_dir) = prerequisites("symbol_detail_view_in_headless_chromium") else {
        return;
    };
    let out_dir = repo_root().join("target/test-output/browser/detail");
    clean_out_dir(&out_dir);
    let config = out_dir.join("detail.toml");
    std::fs::write(&config, DETAIL_CONFIG).expect("write detail config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(free_port(), &out_dir, &["--config", &config]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let restarts = run_script(
        "detail.test.mjs",
        &base,
        &test_dir,
        &out_dir,
        &mut server,
        None,
        None,
        &[],
    );
    assert_eq!(restarts, 0);
    assert_screenshots(
        &out_dir,
        &[
            "10-detail.png",
            "11-ladder.png",
            "12-tape.png",
            "13-chart.png",
            "14-mismatch.png",
            "15-detail-phone.png",
            "16-resync.png",
        ],
    );
    server.stop();
}

/// The dashboard's own pure modules (candles, tape, ladder numbers, the latency readout) under
/// `node --test`; needs only node. (The book, its checksum and the clock offset estimate are the JS
/// SDK's, tested in `clients/js`.)
#[test]
fn dashboard_market_modules_unit_tests_in_node() {
    if !node_ok() {
        let msg = "node on PATH is missing";
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (CI is set, so this is a failure, not a skip)");
        }
        eprintln!("\n!!! SKIPPED dashboard_market_modules_unit_tests_in_node: {msg}\n");
        return;
    }
    let web = repo_root().join("dashboards/web");
    let out = Command::new("node")
        .args(["--test", "test/unit/market.test.mjs"])
        .current_dir(&web)
        .output()
        .expect("run node --test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "node --test failed:\n{text}");
    assert!(text.contains("# fail 0"), "node --test output:\n{text}");
}

/// A TCP proxy on a free loopback port to `target`: pumps bytes both ways per connection, and
/// [`Proxy::cut`] resets every connection it carries (as a network blip or a proxy restart
/// would) while it keeps accepting new ones.
struct Proxy {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let held = conns.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue; // the server is restarting: the client retries
                };
                let pairs = [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ];
                for pair in pairs {
                    let (Ok(mut from), Ok(mut to)) = pair else {
                        continue;
                    };
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                let mut list = held.lock().expect("proxy list");
                list.push(client);
                list.push(upstream);
            }
        });
        Proxy { port, conns }
    }

    /// Resets every connection carried so far.
    fn cut(&self) {
        for c in self.conns.lock().expect("proxy list").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Chromium's own EventSource on `/sse`, through a proxy: it streams, resumes exactly (every seq
/// once) after the proxy cuts it, and after a server restart gets `epoch_changed` and a snapshot.
#[test]
fn event_source_resumes_through_a_cut_and_a_restart_in_headless_chromium() {
    let Some(test_dir) =
        prerequisites("event_source_resumes_through_a_cut_and_a_restart_in_headless_chromium")
    else {
        return;
    };
    let out_dir = repo_root().join("target/test-output/browser/sse");
    clean_out_dir(&out_dir);
    let mut server = Server::start(free_port(), &out_dir, &[]);
    let proxy = Proxy::start(server.port);
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let restarts = run_script(
        "sse.test.mjs",
        &base,
        &test_dir,
        &out_dir,
        &mut server,
        None,
        Some(&proxy),
        &[],
    );
    assert_eq!(restarts, 1);
    server.stop();
}
