//! WebSocket frames by hand: the client's upgrade request, client frames (masked, or unmasked as a
//! protocol violation) and the server's unmasked frames read back.

use std::fmt::Display;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::WAIT;

/// The mask key of [`masked`] frames (any key does: the server unmasks whatever it is given).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first_byte` (FIN, RSV bits, opcode), then `payload` masked with `mask`, or sent
/// as it is when `mask` is `None` (which a server must refuse from a client).
pub fn client_frame(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(first_byte);
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else if payload.len() < 65536 {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A client frame masked with `key`, as a client must send it.
pub fn masked_with(first_byte: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    client_frame(first_byte, payload, Some(key))
}

/// A client frame masked with [`MASK`]: `first_byte` is FIN, RSV bits and opcode (0x81 a final text
/// frame, 0x89 a ping, 0x88 a close, 0x01/0x00/0x80 the fragments of a text message).
pub fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(first_byte, payload, Some(MASK))
}

/// A masked final text frame.
pub fn masked_text(payload: &[u8]) -> Vec<u8> {
    masked(0x81, payload)
}

/// A frame sent without a mask: a protocol violation from a client.
pub fn unmasked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(first_byte, payload, None)
}

/// The client's upgrade request for `/ws` on `host`, with `extra_headers` (each line ending in
/// `\r\n`), ending with the blank line.
pub fn upgrade_request(host: impl Display, extra_headers: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {extra_headers}\r\n"
    )
}

/// Reads one unmasked server frame from `r`: (opcode, payload); `buf` keeps what was read past it.
/// `None` on EOF or a read error. For tests that read one half of a split socket.
pub async fn read_frame_from<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Option<(u8, Vec<u8>)> {
    loop {
        if buf.len() >= 2 {
            let (hlen, len) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&buf[2..10]);
                    (10, u64::from_be_bytes(l) as usize)
                }
                126 | 127 => (usize::MAX, 0),
                n => (2, n as usize),
            };
            if hlen != usize::MAX && buf.len() >= hlen + len {
                let op = buf[0] & 0x0f;
                let payload = buf[hlen..hlen + len].to_vec();
                buf.drain(..hlen + len);
                return Some((op, payload));
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, r.read(&mut chunk))
            .await
            .expect("frame in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
