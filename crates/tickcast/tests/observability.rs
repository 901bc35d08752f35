//! Observability and deployment files checked with the real tools: `promtool` (live `/metrics`,
//! shipped Prometheus config and alert rules), `docker-compose config`, the Grafana dashboard's
//! queries against what tickcast really exports, the Dockerfile's health check against a live
//! server, and a real Prometheus server scraping a running tickcast with subscribers.
//!
//! The tools come from Debian's `prometheus` and `docker-compose` packages, which `./.ci/test-all`
//! installs when missing. A missing tool fails the test (it never skips).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for one external tool run.
const TOOL_WAIT: Duration = Duration::from_secs(60);
/// Upper bound for Prometheus to start, scrape, and see a counter rise.
const PROM_WAIT: Duration = Duration::from_secs(60);

/// The path of an installed tool; fails (never skips) when it is missing.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => {
            let ci = if std::env::var_os("CI").is_some() {
                " (CI is set: the test command must install it)"
            } else {
                ""
            };
            panic!(
                "`{name}` is not installed{ci}. Run ./.ci/test-all, which installs Debian's \
                 `prometheus` (prometheus, promtool) and `docker-compose` packages when missing."
            )
        }
    }
}

/// Runs a command to completion within [`TOOL_WAIT`], feeding `stdin`; kills it if it overruns.
fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let input = stdin.map(|b| b.to_vec());
    let mut pipe_in = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let (Some(p), Some(b)) = (pipe_in.as_mut(), input) {
            let _ = p.write_all(&b);
        }
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + TOOL_WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {TOOL_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Runs a command and asserts it succeeded; returns stdout + stderr.
fn run_ok(cmd: Command, stdin: Option<&[u8]>) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd, stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{text}",
        out.status
    );
    text
}

/// Drives a server so every metric family has a sample (labelled families appear only once a
/// label value has been used): a subscriber receives ticks, a request is refused by a limit, a bad
/// request gets an error, a client closes. Returns the `/metrics` text once all of it shows.
async fn exercised_metrics(server: &RunningServer) -> String {
    let mut a = Client::connect(server).await;
    a.subscribe(&["ticker.AAPL", "ticker.MSFT"], 1).await;
    a.next_of_type("tick").await;
    a.send_text("not json").await;
    assert_eq!(a.next_of_type("error").await["code"], "bad_json");
    a.send(json!({"op":"subscribe","topics":["ticker.X","ticker.Y","ticker.Z"],"id":2}))
        .await;
    assert_eq!(a.next_of_type("error").await["code"], "too_many_topics");
    let mut b = Client::connect(server).await;
    b.ws.close(None).await.expect("close");
    b.expect_close().await;
    a.next_of_type("tick").await;

    wait_for("metrics show the exercised series", WAIT, || async {
        let (status, _, body) = http_get(server, "/metrics").await;
        assert_eq!(status, 200);
        let text = String::from_utf8(body).expect("UTF-8 metrics");
        let m = Metrics::parse(&text);
        let ready = [
            "tickcast_connections_closed_total{reason=\"client\"}",
            "tickcast_client_errors_total{code=\"bad_json\"}",
            "tickcast_limit_rejections_total{limit=\"max_topics_per_connection\"}",
        ]
        .iter()
        .all(|s| m.sample(s) == Some(1.0))
            && m.sample("tickcast_tick_to_write_seconds_count").is_some()
            && m.value("tickcast_messages_sent_total{transport=\"ws\"}") > 0.0;
        ready.then_some(text)
    })
    .await
}

/// Series names a scrape exports: counters and gauges by name, histograms as
/// `_bucket`/`_sum`/`_count` (the bare histogram name selects nothing in PromQL).
fn exported_series(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "summary" => {
                for suffix in ["", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// `tickcast_*` identifiers in a PromQL expression or any text.
fn metric_idents(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("tickcast_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start + "tickcast_".len();
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Every string under a key named `key`, anywhere in `v`.
fn strings_under(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_under(x, key, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_live_metrics_and_shipped_files() {
    let promtool = tool("promtool");
    let root = repo_root();
    let server = start_server(|c| {
        feed(c, &["AAPL", "MSFT"], 200.0);
        c.limits.max_topics_per_connection = 2;
    })
    .await;
    let text = exercised_metrics(&server).await;

    // promtool lints the exposition: naming conventions, _total counters, base units, HELP text.
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "metrics"]);
    let out = run_ok(cmd, Some(text.as_bytes()));
    println!("promtool check metrics: ok {out}");

    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "config"])
        .arg(root.join("dashboards/prometheus/prometheus.yml"));
    println!("{}", run_ok(cmd, None));
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "rules"])
        .arg(root.join("dashboards/prometheus/alerts.yml"));
    println!("{}", run_ok(cmd, None));
    // The alerts' unit tests: each alert fires on the series it is meant for, and only then.
    let mut cmd = Command::new(&promtool);
    cmd.args(["test", "rules"])
        .arg(root.join("dashboards/prometheus/alerts_test.yml"));
    println!("{}", run_ok(cmd, None));

    // Alert rules only name metrics tickcast exports (a renamed metric would silently never fire);
    // the rules' prose may also name a histogram by its family name.
    let exported = exported_series(&text);
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let rules = std::fs::read_to_string(root.join("dashboards/prometheus/alerts.yml")).unwrap();
    let unknown: Vec<_> = metric_idents(&rules)
        .into_iter()
        .filter(|m| !exported.contains(m) && !families.contains(m))
        .collect();
    assert!(
        unknown.is_empty(),
        "alerts.yml names metrics tickcast does not export: {unknown:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_name_exported_metrics() {
    let root = repo_root();
    let server = start_server(|c| {
        feed(c, &["AAPL", "MSFT"], 200.0);
        c.limits.max_topics_per_connection = 2;
        c.auth.allowed_origins = vec!["https://board.example".into()];
    })
    .await;
    let mut exported = exported_series(&exercised_metrics(&server).await);
    // An upgrade from a foreign origin, so the labelled auth-failure counter exists too.
    let mut raw = TcpStream::connect(server.addr()).await.expect("connect");
    raw.write_all(upgrade_request("x", "Origin: https://evil.example\r\n").as_bytes())
        .await
        .expect("write");
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).await.expect("response");
    assert_eq!(&head, b"HTTP/1.1 403");
    let (_, _, body) = http_get(&server, "/metrics").await;
    exported.extend(exported_series(&String::from_utf8_lossy(&body)));
    server.shutdown().await;

    let raw = std::fs::read_to_string(root.join("dashboards/grafana/tickcast.json")).unwrap();
    let dash: Value = serde_json::from_str(&raw).expect("dashboard is JSON");
    assert_eq!(dash["uid"], "tickcast");
    let panels = dash["panels"].as_array().expect("panels");
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            let names = metric_idents(expr);
            assert!(
                !names.is_empty(),
                "panel {title}: query names no tickcast metric: {expr}"
            );
            for n in names {
                assert!(
                    exported.contains(&n),
                    "panel {title}: {n} is not exported by tickcast (query {expr})"
                );
                used.insert(n);
            }
            queries += 1;
        }
    }
    // Template variables query metrics too.
    let mut defs = Vec::new();
    strings_under(&dash["templating"], "query", &mut defs);
    strings_under(&dash["templating"], "definition", &mut defs);
    for d in &defs {
        for n in metric_idents(d) {
            assert!(exported.contains(&n), "template variable names unknown {n}");
        }
    }
    assert!(queries >= 20, "only {queries} queries");
    // What the issue asks the dashboard to show.
    for m in [
        "tickcast_connections_open",
        "tickcast_messages_sent_total",
        "tickcast_bytes_sent_total",
        "tickcast_messages_conflated_total",
        "tickcast_messages_dropped_total",
        "tickcast_tick_to_write_seconds_bucket",
        "tickcast_fanout_seconds_bucket",
        "tickcast_frames_per_write_sum",
        "tickcast_feed_ticks_total",
        "tickcast_feed_parse_errors_total",
        "tickcast_process_cpu_seconds_total",
        "tickcast_process_resident_memory_bytes",
        "tickcast_process_open_fds",
    ] {
        assert!(used.contains(m), "dashboard does not show {m}");
    }
    for q in ["histogram_quantile(0.5,", "histogram_quantile(0.99,"] {
        assert!(
            raw.contains(q) && raw.contains("tickcast_tick_to_write_seconds_bucket"),
            "latency {q}"
        );
    }

    // Provisioning points Grafana at the Prometheus service and at the dashboard's folder.
    let ds = std::fs::read_to_string(
        root.join("dashboards/grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    assert!(ds.contains("type: prometheus") && ds.contains("http://prometheus:9090"));
    let prov = std::fs::read_to_string(
        root.join("dashboards/grafana/provisioning/dashboards/tickcast.yml"),
    )
    .unwrap();
    assert!(prov.contains("path: /etc/grafana/dashboards"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_config_is_valid_and_healthcheck_works() {
    let compose = tool("docker-compose");
    let root = repo_root();
    let mut cmd = Command::new(&compose);
    cmd.current_dir(&root)
        .args(["-f", "docker-compose.yml", "config"]);
    let resolved = run_ok(cmd, None);
    for needle in [
        "dockerfile: config/docker/Dockerfile",
        "TICKCAST_LISTEN: 0.0.0.0:8080",
        "prom/prometheus",
        "grafana/grafana",
    ] {
        assert!(
            resolved.contains(needle),
            "compose lacks {needle}:\n{resolved}"
        );
    }
    for path in [
        "config/docker/Dockerfile",
        "config/docker/Dockerfile.dockerignore",
        "config/tickcast.toml",
        "dashboards/prometheus/prometheus.yml",
        "dashboards/prometheus/alerts.yml",
        "dashboards/grafana/tickcast.json",
        "dashboards/grafana/provisioning/datasources/prometheus.yml",
        "dashboards/grafana/provisioning/dashboards/tickcast.yml",
    ] {
        assert!(root.join(path).is_file(), "{path} is missing");
    }

    // The image's HEALTHCHECK command (bash /dev/tcp, no curl in the slim image) run against a
    // real tickcast: healthy while it serves, unhealthy when nothing listens.
    let dockerfile = std::fs::read_to_string(root.join("config/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("\nUSER tickcast"), "runs as non-root");
    let hc = dockerfile
        .split("\nHEALTHCHECK ")
        .nth(1)
        .expect("HEALTHCHECK");
    let json_start = hc.find("CMD [").expect("HEALTHCHECK CMD [...]") + 4;
    let json_end = json_start + hc[json_start..].find("]\n").expect("end of CMD") + 1;
    let argv: Vec<String> =
        serde_json::from_str(&hc[json_start..json_end]).expect("HEALTHCHECK CMD is a JSON array");
    tool(&argv[0]);
    let server = start_server(|c| feed(c, &["AAPL"], 10.0)).await;
    let check = |listen: String| {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("TICKCAST_LISTEN", listen);
        run(cmd, None).status.success()
    };
    let addr = server.addr();
    assert!(
        check(format!("0.0.0.0:{}", addr.port())),
        "health check fails against a live server"
    );
    server.shutdown().await;
    assert!(
        !check(format!("0.0.0.0:{}", free_port())),
        "health check passes with nothing listening"
    );
}

/// A Prometheus server started for a test; killed (and its data removed) on drop.
struct Prometheus {
    child: Reaped,
    dir: TempDir,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let bin = tool("prometheus");
        let dir = TempDir::new("prometheus");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tickcast\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child: Reaped(Some(child)),
            dir,
            addr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Fails with Prometheus's log if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.child().try_wait() {
            panic!("prometheus exited ({status}):\n{}", self.log());
        }
    }

    /// GET: (status, body); `None` while it does not answer.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let (status, _, body) = try_http_get_addr(self.addr, path).await?;
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// An instant query's single sample value, if it has exactly one.
    async fn query_one(&self, promql: &str) -> Option<f64> {
        let (status, body) = self
            .get(&format!("/api/v1/query?query={}", urlencode(promql)))
            .await?;
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_tickcast_with_subscribers() {
    let server = start_server(|c| feed(c, &["AAPL", "MSFT", "NVDA"], 300.0)).await;

    // Subscribers that keep receiving for the whole test.
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(&server).await;
        c.subscribe(&["ticker.AAPL", "ticker.MSFT", "ticker.NVDA"], i)
            .await;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            loop {
                c.next_of_type("tick").await;
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let mut prom = Prometheus::start(server.addr());
    let deadline = Instant::now() + PROM_WAIT;
    let job = "{job=\"tickcast\"}";

    // Ready, then the target is up.
    loop {
        prom.assert_running();
        if matches!(prom.get("/-/ready").await, Some((200, _))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never became ready:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        prom.assert_running();
        if prom.query_one(&format!("up{job}")).await == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "target never up:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two scrapes later, the messages-sent counter Prometheus stored has risen.
    let query = "tickcast_messages_sent_total{job=\"tickcast\",transport=\"ws\"}";
    let mut first = None;
    let (before, after) = loop {
        prom.assert_running();
        match (first, prom.query_one(query).await) {
            (None, Some(v)) => first = Some(v),
            (Some(a), Some(b)) if b > a => break (a, b),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "tickcast_messages_sent_total never rose in Prometheus (first {first:?}):\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        received.load(Ordering::Relaxed) > 0,
        "subscribers received ticks"
    );
    println!("prometheus: up == 1, tickcast_messages_sent_total {before} -> {after}");

    // The feed's ingest counter arrived too, with its feed label.
    let ticks = prom
        .query_one("tickcast_feed_ticks_total{job=\"tickcast\",feed=\"synthetic\"}")
        .await;
    assert!(ticks.is_some_and(|v| v > 0.0), "feed ticks: {ticks:?}");

    for r in readers {
        r.abort();
    }
    drop(prom);
    server.shutdown().await;
}

/// `tickcast 2>&1 | head -1`: the reader of the log pipe goes away after one line. The server must
/// neither lose its feed (nor report ready while it is dead) nor ignore SIGTERM afterwards, and
/// a pipe gets no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_stops_neither_the_feed_nor_sigterm() {
    use std::io::BufRead;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = Reaped(Some(
        tickcast_command(addr)
            .args(["--rate", "200", "--log", "debug"])
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tickcast"),
    ));
    let stderr = server.child().stderr.take().expect("stderr");
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stderr)
            .read_line(&mut line)
            .expect("read the first log line");
        line
        // The reader (and the pipe's only read end) is dropped here, as `head -1` exits.
    });
    let first = tokio::time::timeout(WAIT, first)
        .await
        .expect("a first log line in time")
        .expect("reader thread");
    assert!(!first.is_empty() && !first.contains('\u{1b}'), "{first:?}");

    wait_for_listener(addr).await;
    let deadline = Instant::now() + 3 * WAIT;
    let ticks = "tickcast_feed_ticks_total{feed=\"synthetic\"}";
    let before = metric_at(addr, ticks).await.unwrap_or(0.0);
    // Malformed HTTP makes the server log (at debug), into the closed pipe.
    loop {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(b"NOT HTTP\r\n\r\n").await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
        let dropped = metric_at(addr, "tickcast_log_lines_dropped_total").await;
        let now = metric_at(addr, ticks).await.unwrap_or(0.0);
        if dropped.is_some_and(|d| d > 0.0) && now > before + 10.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "feed ticks {before} -> {now}, dropped log lines {dropped:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get_addr(addr, "/readyz").await.0, 200);

    let pid = server.child().id() as libc::pid_t;
    // SAFETY: sends a signal to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(s) = server.child().try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop tickcast");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
