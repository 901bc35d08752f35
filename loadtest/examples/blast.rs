//! `blast`: a minimal stand-in server that speaks just enough of tickcast's protocol v1 to
//! measure how fast the load generator itself can receive.
//!
//! It accepts WebSocket upgrades on loopback, reads each connection's subscribe request, acks
//! it, then writes pre-encoded tick frames for the subscribed topics (per-topic seq from 1, ts
//! in unix µs) in large batches, as fast as the socket takes them or at `--rate-per-conn`.
//! Encoding is a few integer formats into one buffer per batch, so one core of `blast` outruns
//! one core of a WebSocket reader. It is not a server: no fan-out, no backpressure policy.
//!
//! ```text
//! cargo run --release -p tickcast-loadgen --example blast -- --listen 127.0.0.1:19000 --seconds 60
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fastwebsockets::{OpCode, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Frames written per batch (one write call).
const BATCH: usize = 256;

/// Longest upgrade request accepted.
const MAX_REQUEST: usize = 8 * 1024;

struct Args {
    listen: SocketAddr,
    seconds: u64,
    rate_per_conn: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:19000".parse().map_err(|e| format!("{e}"))?,
        seconds: 60,
        rate_per_conn: 0.0,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut it = v.iter();
    while let Some(k) = it.next() {
        let val = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--listen" => a.listen = val.parse().map_err(|e| format!("--listen: {e}"))?,
            "--seconds" => a.seconds = val.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--rate-per-conn" => {
                a.rate_per_conn = val.parse().map_err(|e| format!("--rate-per-conn: {e}"))?
            }
            _ => {
                return Err(format!(
                    "unknown flag {k}; flags: --listen ADDR --seconds N --rate-per-conn R"
                ))
            }
        }
    }
    if !a.listen.ip().is_loopback() {
        return Err(format!("refusing non-loopback listen address {}", a.listen));
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            std::process::exit(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let res = local.block_on(&rt, async move {
        let l = TcpListener::bind(args.listen).await?;
        eprintln!(
            "blast: listening on {} for {} s",
            l.local_addr()?,
            args.seconds
        );
        let stop = tokio::time::sleep_until(deadline.into());
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                acc = l.accept() => {
                    let (s, _) = acc?;
                    let rate = args.rate_per_conn;
                    tokio::task::spawn_local(async move {
                        let _ = serve(s, rate, deadline).await;
                    });
                }
            }
        }
        Ok::<_, std::io::Error>(())
    });
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve(
    mut s: TcpStream,
    rate: f64,
    deadline: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    s.set_nodelay(true)?;
    // Upgrade: read the request head, answer 101 (the load generator does not check the accept
    // key, so no SHA-1 here).
    let mut req = Vec::new();
    let mut chunk = [0u8; 1024];
    while memchr::memmem::find(&req, b"\r\n\r\n").is_none() {
        let n = s.read(&mut chunk).await?;
        if n == 0 || req.len() > MAX_REQUEST {
            return Ok(());
        }
        req.extend_from_slice(&chunk[..n]);
    }
    s.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    .await?;
    let mut ws = WebSocket::after_handshake(s, Role::Server);
    let topics: Vec<String> = loop {
        let f = ws.read_frame().await?;
        if f.opcode == OpCode::Text {
            let v: serde_json::Value = serde_json::from_slice(&f.payload)?;
            break v["topics"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
        }
    };
    let mut s = ws.into_inner();
    if topics.is_empty() {
        return Ok(());
    }
    let ack = serde_json::json!({"type":"subscribed","topics":topics,"id":1}).to_string();
    let mut buf = Vec::with_capacity(BATCH * 160);
    push_frame(&mut buf, ack.as_bytes());
    s.write_all(&buf).await?;

    let mut seqs = vec![0u64; topics.len()];
    let mut next = 0usize;
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut json = Vec::with_capacity(192);
    while Instant::now() < deadline {
        let n = if rate > 0.0 {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if due <= sent {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            ((due - sent) as usize).min(BATCH)
        } else {
            BATCH
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        buf.clear();
        for _ in 0..n {
            let i = next;
            next = (next + 1) % topics.len();
            seqs[i] += 1;
            json.clear();
            tick_json(&mut json, &topics[i], seqs[i], ts);
            push_frame(&mut buf, &json);
        }
        s.write_all(&buf).await?;
        sent += n as u64;
    }
    Ok(())
}

/// Same shape and field order as tickcast's ticks.
fn tick_json(out: &mut Vec<u8>, topic: &str, seq: u64, ts: u64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"{\"type\":\"tick\",\"topic\":\"");
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    out.extend_from_slice(b.format(seq).as_bytes());
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(b.format(ts).as_bytes());
    out.extend_from_slice(b",\"bid\":189.12,\"ask\":189.14,\"last\":189.13,\"size\":200}");
}

/// Unmasked server text frame.
fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if payload.len() < 65_536 {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}
