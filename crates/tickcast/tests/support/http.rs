//! Plain HTTP/1.1 requests over a raw socket (or any stream, e.g. TLS), one per connection.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{RunningServer, WAIT};

/// A plain HTTP/1.1 GET over a raw socket: (status, headers, body).
pub async fn http_get(server: &RunningServer, path: &str) -> (u16, String, Vec<u8>) {
    http_get_addr(server.addr(), path).await
}

/// [`http_get`] to a server at `addr` (e.g. a spawned binary).
pub async fn http_get_addr(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    http_get_over(stream, &addr.to_string(), path).await
}

/// [`http_get_addr`] that gives `None` instead of failing when nothing answers in time or the
/// answer is not HTTP (a server that may not be up yet).
pub async fn try_http_get_addr(addr: SocketAddr, path: &str) -> Option<(u16, String, Vec<u8>)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let buf = get(stream, &addr.to_string(), path).await.ok()?;
    split_response(&buf)
}

/// A GET with `Connection: close` over an open `stream` (TCP or TLS) to `host`: (status, headers,
/// body).
pub async fn http_get_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    host: &str,
    path: &str,
) -> (u16, String, Vec<u8>) {
    let buf = get(stream, host, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    split_response(&buf).unwrap_or_else(|| panic!("not HTTP: {}", String::from_utf8_lossy(&buf)))
}

/// Sends the GET and reads the whole response, within [`WAIT`]. A TLS peer that closes without
/// close_notify still gives the whole response.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> std::io::Result<Vec<u8>> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut buf)).await {
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        Ok(Err(e)) if e.kind() != std::io::ErrorKind::UnexpectedEof => Err(e),
        Ok(_) => Ok(buf),
    }
}

/// (status, head, body) of a whole response; a chunked body is put back together.
fn split_response(buf: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.get(9..12)?.parse().ok()?;
    let mut body = buf[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, head, body))
}

/// A raw HTTP/1.1 request with extra `headers` (each line ending in `\r\n`) and `body`, sent in
/// one write: (status, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    // One write: the server may answer (413) without reading the body, and body bytes still in
    // flight when it closes could reset the connection before the answer is read.
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    let _ = s.write_all(&req).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&buf);
    let status = text[9..12].parse().expect("status");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    (status, buf[split..].to_vec())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}
