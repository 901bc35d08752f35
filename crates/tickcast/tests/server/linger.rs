//! Lingering close: a client the server closes while it is still sending gets the close frame, then
//! the end of the stream, and its writes keep succeeding until it closes too. Without lingering the
//! server's socket closes with the client's bytes unread and the kernel answers them with a reset:
//! the client's next write fails, and on stacks that drop received data on a reset (browsers then
//! report 1006) the close frame is lost. Also: each limit ends a linger and is counted, and
//! shutdown lingers within its grace.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::support::*;

/// A message far over `max_message_bytes` (64 KiB by default): the server closes with 1009 as soon
/// as it has read the frame's header.
const MESSAGE: usize = 2 * 1024 * 1024;
/// Bytes per write, as a browser's socket writes go.
const CHUNK: usize = 64 * 1024;

/// A masked text frame of `len` spaces.
fn too_big_frame(len: usize) -> Vec<u8> {
    masked(0x81, &vec![b' '; len])
}

/// Sends `frame` over `stream` the way a browser sends a message it has started: its header and
/// first chunk, then, once the server's close frame has arrived (so the server has certainly
/// closed), the rest in chunks, then its own close frame and FIN. Returns the server's close code.
/// Fails on any sign of a reset: a write that fails, or anything but a clean end of stream after
/// the close frame. `buf` holds bytes read past the handshake.
async fn send_while_closed<S>(stream: S, mut buf: Vec<u8>, frame: &[u8]) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (closed, close_seen) = oneshot::channel::<()>();
    let first = (14 + CHUNK).min(frame.len());
    let writer = async {
        wr.write_all(&frame[..first])
            .await
            .map_err(|e| format!("first chunk: {e}"))?;
        close_seen.await.map_err(|_| "no close frame to wait for")?;
        for (i, chunk) in frame[first..].chunks(CHUNK).enumerate() {
            wr.write_all(chunk)
                .await
                .map_err(|e| format!("chunk {} after the close frame: {e}", i + 1))?;
        }
        wr.write_all(&masked(0x88, &1009u16.to_be_bytes()))
            .await
            .map_err(|e| format!("close reply: {e}"))?;
        wr.shutdown().await.map_err(|e| format!("FIN: {e}"))
    };
    let reader = async {
        let code = match read_frame_from(&mut rd, &mut buf).await {
            Some((0x8, p)) if p.len() >= 2 => u16::from_be_bytes([p[0], p[1]]),
            other => return Err(format!("expected a close frame, got {other:?}")),
        };
        let _ = closed.send(());
        // The server's FIN follows its close frame at once: a clean end of stream, not a reset.
        let mut rest = [0u8; 64];
        match rd.read(&mut rest).await {
            Ok(0) => Ok(code),
            Ok(n) => Err(format!("{n} bytes after the close frame")),
            Err(e) => Err(format!("reading after the close frame: {e}")),
        }
    };
    let (written, code) = tokio::join!(writer, reader);
    written?;
    code
}

/// The value of `sample` once it reaches `want` (bounded): lingering closes are counted when the
/// linger ends, a moment after the client's last write.
async fn wait_for_sample(server: &RunningServer, sample: &str, want: f64) -> Metrics {
    let what = format!("{sample} reaches {want}");
    wait_for(&what, WAIT, || async {
        let m = metrics(server).await;
        (m.value(sample) >= want).then_some(m)
    })
    .await
}

fn lingering(outcome: &str) -> String {
    format!("tickcast_lingering_closes_total{{outcome=\"{outcome}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_too_big_message_reads_1009_fifty_times_in_fifty() {
    const TRIES: usize = 50;
    let server = start_server(|c| feed(c, &["AAPL"], 10.0)).await;
    let frame = too_big_frame(MESSAGE);
    let started = Instant::now();
    let mut failures = Vec::new();
    for i in 0..TRIES {
        let (stream, buf) = RawClient::connect(&server).await.into_parts();
        match tokio::time::timeout(WAIT, send_while_closed(stream, buf, &frame)).await {
            Ok(Ok(1009)) => {}
            Ok(Ok(code)) => failures.push(format!("try {i}: close code {code}")),
            Ok(Err(e)) => failures.push(format!("try {i}: {e}")),
            Err(_) => failures.push(format!("try {i}: timed out")),
        }
    }
    let took = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {TRIES} tries failed: {failures:#?}",
        failures.len()
    );
    eprintln!("{TRIES} of {TRIES} tries read 1009 and a clean end of stream in {took:?}");

    let m = wait_for_sample(&server, &lingering("client_closed"), TRIES as f64).await;
    assert_eq!(m.value(&lingering("client_closed")), TRIES as f64);
    for outcome in [
        "idle_timeout",
        "time_limit",
        "byte_limit",
        "io_error",
        "shutdown",
    ] {
        assert_eq!(m.sample(&lingering(outcome)), Some(0.0), "{outcome}");
    }
    // Nearly all of every message was read after the close frame and thrown away (the session
    // itself read at most a few KiB of each before it saw the header).
    let discarded = m.value("tickcast_lingering_discarded_bytes_total");
    let least = (TRIES * (MESSAGE - CHUNK)) as f64;
    assert!(
        (least..=(TRIES * (MESSAGE + 64)) as f64).contains(&discarded),
        "{discarded} bytes discarded"
    );
    assert_eq!(
        m.value("tickcast_connections_closed_total{reason=\"protocol_error\"}"),
        TRIES as f64
    );
    wait_until_async("no connection lingers", WAIT, || async {
        metrics(&server)
            .await
            .sample("tickcast_connections_lingering")
            == Some(0.0)
    })
    .await;
    wait_for_open(server.addr(), 0).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_clients_still_sending_read_1009_too() {
    const TRIES: usize = 10;
    let cert = TestCert::new("linger");
    let server = start_server(|c| {
        cert.configure(c);
        feed(c, &["AAPL"], 10.0);
    })
    .await;
    // Smaller than the plain test's: every byte is encrypted by the client.
    let frame = too_big_frame(MESSAGE / 4);
    for i in 0..TRIES {
        let mut tls = tls_connect(server.addr(), &cert).await;
        let buf = upgrade_over(&mut tls, "localhost").await;
        let seen = tokio::time::timeout(WAIT, send_while_closed(tls, buf, &frame))
            .await
            .unwrap_or_else(|_| panic!("try {i} timed out"));
        assert_eq!(seen, Ok(1009), "try {i}");
    }
    let state = server.running().state().clone();
    let counted = || Metrics::parse(&state.metrics.render(&state.bus));
    wait_until("every wss linger ends with the client's close", || {
        counted().value(&lingering("client_closed")) == TRIES as f64
    })
    .await;
    assert!(
        counted().value("tickcast_lingering_discarded_bytes_total")
            >= (TRIES * (MESSAGE / 4 - CHUNK)) as f64
    );
    server.shutdown().await;
}

/// Connects, sends the start of a too-big message and reads the 1009 (and the server's FIN is on
/// its way); returns the socket for the test to go on sending, or not.
async fn closed_while_sending(server: &RunningServer) -> tokio::net::TcpStream {
    let mut raw = RawClient::connect(server).await;
    let header_and_some = too_big_frame(MESSAGE);
    raw.stream
        .write_all(&header_and_some[..1024])
        .await
        .expect("header");
    assert_eq!(raw.expect_close_code().await, 1009);
    raw.into_parts().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lingering_limit_ends_the_linger_and_is_counted() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.lingering_time_ms = 600;
        c.limits.lingering_timeout_ms = 200;
        c.limits.lingering_max_bytes = 100_000;
    })
    .await;

    // Bytes: a client that keeps sending is read up to exactly the limit, then closed.
    let mut s = closed_while_sending(&server).await;
    let chunk = vec![b' '; CHUNK];
    for _ in 0..(MESSAGE / CHUNK) {
        if s.write_all(&chunk).await.is_err() {
            break; // the server closed at the limit
        }
    }
    let m = wait_for_sample(&server, &lingering("byte_limit"), 1.0).await;
    assert_eq!(
        m.value("tickcast_lingering_discarded_bytes_total"),
        100_000.0
    );
    drop(s);

    // Silence: a client that neither sends nor closes is let go after the timeout.
    let t = Instant::now();
    let s = closed_while_sending(&server).await;
    wait_for_sample(&server, &lingering("idle_timeout"), 1.0).await;
    let idle = t.elapsed();
    assert!(idle >= Duration::from_millis(200), "{idle:?}");
    drop(s);

    // Time: a client that trickles a byte every 50 ms is never idle, and is let go at the total.
    let t = Instant::now();
    let mut s = closed_while_sending(&server).await;
    while t.elapsed() < Duration::from_secs(3) && s.write_all(b" ").await.is_ok() {
        if metrics(&server).await.value(&lingering("time_limit")) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = wait_for_sample(&server, &lingering("time_limit"), 1.0).await;
    let total = t.elapsed();
    assert!(
        (Duration::from_millis(600)..Duration::from_secs(3)).contains(&total),
        "{total:?}"
    );
    assert_eq!(m.value(&lingering("idle_timeout")), 1.0, "still one");
    assert_eq!(m.value(&lingering("client_closed")), 0.0);
    assert_eq!(m.sample("tickcast_connections_lingering"), Some(0.0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lingers_for_clients_still_sending_within_its_grace() {
    // A client that answers the 1001 and closes is waited for, and reads no reset meanwhile.
    let server = start_server(|c| feed(c, &["AAPL"], 10.0)).await;
    let state = server.running().state().clone();
    let (stream, buf) = RawClient::connect(&server).await.into_parts();
    let (mut rd, mut wr) = stream.into_split();
    let shutdown = tokio::spawn(server.shutdown());
    let mut buf = buf;
    let mut code = None;
    while code.is_none() {
        match read_frame_from(&mut rd, &mut buf).await {
            Some((0x8, p)) if p.len() >= 2 => code = Some(u16::from_be_bytes([p[0], p[1]])),
            Some(_) => continue,
            None => panic!("ended without a close frame"),
        }
    }
    assert_eq!(code, Some(1001));
    // Still sending after the close frame (a request it had queued): no reset.
    for _ in 0..20 {
        wr.write_all(&masked_text(br#"{"op":"ping"}"#))
            .await
            .expect("writes after the 1001 are read, not reset");
    }
    wr.write_all(&masked(0x88, &1001u16.to_be_bytes()))
        .await
        .expect("close reply");
    wr.shutdown().await.expect("FIN");
    let t = Instant::now();
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("shutdown in time")
        .expect("shutdown task");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let m = Metrics::parse(&state.metrics.render(&state.bus));
    assert_eq!(m.value(&lingering("client_closed")), 1.0);

    // A client that keeps sending and never closes is cut when the grace ends, not at the
    // lingering time, and counted as such.
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.server.shutdown_grace_ms = 300;
        c.limits.lingering_time_ms = 10_000;
        c.limits.lingering_timeout_ms = 5_000;
    })
    .await;
    let state = server.running().state().clone();
    let (stream, buf) = RawClient::connect(&server).await.into_parts();
    let (mut rd, mut wr) = stream.into_split();
    let t = Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    let trickle = tokio::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = buf;
    loop {
        match read_frame_from(&mut rd, &mut buf).await {
            Some((0x8, p)) => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1001);
                break;
            }
            Some(_) => continue,
            None => panic!("ended without a close frame"),
        }
    }
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("shutdown in time")
        .expect("shutdown task");
    let took = t.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&took),
        "shutdown took {took:?} with a grace of 300 ms"
    );
    let m = Metrics::parse(&state.metrics.render(&state.bus));
    assert_eq!(m.value(&lingering("shutdown")), 1.0);
    assert_eq!(m.sample("tickcast_connections_lingering"), Some(0.0));
    trickle.abort();
}
