//! Batched socket sends through io_uring (Linux only), for the gateway's write pass: it hands the kernel the sends of many
//! connections in one `io_uring_enter` instead of one `send(2)` each. The kernel's work per send
//! is the same (on loopback it includes the client's receive path); what a batch saves is the
//! system call's entry and exit per connection, which this 2-vCPU VM charges dearly (measured in
//! docs/performance.md).
//!
//! Every send carries `MSG_DONTWAIT`: a full socket completes at once with `EAGAIN`, never parked
//! in the kernel, so a batch is done when the submission returns; the caller then writes that
//! connection the ordinary way, which lets tokio learn the socket is full. A kernel or sandbox
//! without io_uring (old kernels, seccomp profiles that forbid it) makes [`SendRing::new`] fail and
//! the server keeps `send(2)`.
//!
//! Owns the ring and the one `unsafe` that pushing a send needs (the kernel reads the caller's
//! buffer); knows nothing of connections, queues or frames. The gateway crate forbids `unsafe`.

use std::io;
use std::ops::Range;
use std::os::fd::RawFd;

/// Most sends in one submission.
pub const MAX_BATCH: usize = 64;

/// The result of a send the ring did not take (see [`SendRing::send_all`]).
pub const NOT_SENT: i32 = i32::MIN;

/// One send: bytes `range` of the batch's buffer to socket `fd`.
#[derive(Debug, Clone)]
pub struct BatchSend {
    /// The connection's socket.
    pub fd: RawFd,
    /// Where its bytes are in the buffer handed to [`SendRing::send_all`].
    pub range: Range<usize>,
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use io_uring::{opcode, types, IoUring};

    /// A shard's submission ring for sends.
    pub struct SendRing {
        ring: IoUring,
    }

    impl SendRing {
        /// A ring for batches of up to [`MAX_BATCH`] sends; fails where io_uring is unavailable.
        pub fn new() -> io::Result<SendRing> {
            Ok(SendRing {
                ring: IoUring::new(MAX_BATCH as u32)?,
            })
        }

        /// Sends every `sends[i]` (at most [`MAX_BATCH`]) from `buf` and returns once all are done;
        /// `results[i]` is the bytes the socket took, or a negated errno (`-EAGAIN`: full). On an
        /// error of the ring itself the sends it did not take keep [`NOT_SENT`] and the ring must
        /// be dropped (the caller writes those connections with send(2)).
        pub fn send_all(
            &mut self,
            buf: &[u8],
            sends: &[BatchSend],
            results: &mut [i32],
        ) -> io::Result<()> {
            assert!(sends.len() <= MAX_BATCH && results.len() >= sends.len());
            results.fill(NOT_SENT);
            {
                let mut sq = self.ring.submission();
                for (i, s) in sends.iter().enumerate() {
                    let bytes = &buf[s.range.clone()];
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    let send = opcode::Send::new(types::Fd(s.fd), bytes.as_ptr(), len)
                        .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                        .build()
                        .user_data(i as u64);
                    // SAFETY: the kernel reads `bytes` only while this function runs: with
                    // MSG_DONTWAIT each send is issued during the submitting call and completes
                    // there (EAGAIN rather than waiting), and after a failed submission the ring
                    // is dropped, so no send left in it can run later. The queue has room: it
                    // holds MAX_BATCH and is empty here.
                    if unsafe { sq.push(&send) }.is_err() {
                        return Err(io::Error::other("io_uring submission queue full"));
                    }
                }
            }
            let mut done = 0;
            while done < sends.len() {
                match self.ring.submit_and_wait(sends.len() - done) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                for c in self.ring.completion() {
                    if let Some(r) = results.get_mut(c.user_data() as usize) {
                        *r = c.result();
                    }
                    done += 1;
                }
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    /// io_uring is Linux's: elsewhere there is no ring and the server keeps `send(2)`.
    pub struct SendRing;

    impl SendRing {
        pub fn new() -> io::Result<SendRing> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is Linux only",
            ))
        }

        pub fn send_all(&mut self, _: &[u8], _: &[BatchSend], _: &mut [i32]) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is Linux only",
            ))
        }
    }
}

pub use imp::SendRing;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    /// Two sockets in one batch get their own bytes; a socket whose buffer is full completes at
    /// once with EAGAIN instead of waiting.
    #[test]
    fn a_batch_sends_each_range_to_its_socket_and_a_full_socket_says_eagain() {
        let Ok(mut ring) = SendRing::new() else {
            return; // no io_uring here (sandbox): the server falls back to send(2), as this does
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut a_peer, _) = listener.accept().expect("accept");
        let b = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut b_peer, _) = listener.accept().expect("accept");
        let buf = b"hello, world";
        let sends = [
            BatchSend {
                fd: a.as_raw_fd(),
                range: 0..5,
            },
            BatchSend {
                fd: b.as_raw_fd(),
                range: 7..12,
            },
        ];
        let mut results = [0; 2];
        ring.send_all(buf, &sends, &mut results).expect("submit");
        assert_eq!(results, [5, 5]);
        let mut got = [0u8; 5];
        a_peer.read_exact(&mut got).expect("read a");
        assert_eq!(&got, b"hello");
        b_peer.read_exact(&mut got).expect("read b");
        assert_eq!(&got, b"world");

        // Fill a's send buffer (its peer reads nothing): the next send says EAGAIN at once.
        a.set_nonblocking(true).expect("nonblocking");
        let chunk = vec![0u8; 1 << 16];
        let fill = [BatchSend {
            fd: a.as_raw_fd(),
            range: 0..chunk.len(),
        }];
        let mut last = 0;
        for _ in 0..10_000 {
            ring.send_all(&chunk, &fill, &mut results).expect("submit");
            last = results[0];
            if last < 0 {
                break;
            }
        }
        assert_eq!(last, -libc::EAGAIN);
    }
}
