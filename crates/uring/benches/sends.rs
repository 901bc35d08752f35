//! The cost of handing 64 loopback TCP connections 1,200 bytes each (a write of ~10 ticks), as the
//! write pass does: one `send(2)` per connection against one io_uring submission for all 64
//! ([`SendRing::send_all`]). A thread on CPU 1 drains the peers with epoll, as clients would;
//! the sends run on CPU 0. Both paths
//! send with `MSG_DONTWAIT`; a full socket (the drain fell behind) is counted and printed, and
//! should stay at 0 for the figures to mean anything.
//!
//! Run: `cargo bench -p tickcast-uring --bench sends`. Linux only (elsewhere it prints why and
//! exits). On a VM the difference is mostly the system call's entry and exit, which is what the
//! ring saves per connection; the kernel's TCP work per send is the same on both paths.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickcast_uring::{BatchSend, SendRing, MAX_BATCH};

const CONNS: usize = MAX_BATCH;
const BYTES: usize = 1200;

/// Pins the calling thread to `cpu` (the bench sends on CPU 0, the drain reads on CPU 1, as the
/// rig pins a server and its client).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call reads it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Connected pairs; the peers are drained by a thread until `stop`.
struct Fixture {
    senders: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn new() -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut senders = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..CONNS {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_nonblocking(true).expect("nonblocking");
            senders.push(s);
            let (p, _) = listener.accept().expect("accept");
            p.set_nonblocking(true).expect("nonblocking");
            peers.push(p);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let drain = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // A client's way: sleep in epoll until data comes (so each send wakes it, as a
                // real client is woken), on the other core.
                pin(1);
                // SAFETY: plain epoll calls on descriptors this thread owns; the event array
                // outlives each call.
                let ep = unsafe { libc::epoll_create1(0) };
                for (i, p) in peers.iter().enumerate() {
                    let mut ev = libc::epoll_event {
                        events: libc::EPOLLIN as u32,
                        u64: i as u64,
                    };
                    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, p.as_raw_fd(), &mut ev) };
                }
                let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; CONNS];
                let mut buf = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), CONNS as i32, 50) };
                    for ev in events.iter().take(n.max(0) as usize) {
                        let mut p = &peers[ev.u64 as usize];
                        while let Ok(n) = p.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
                unsafe { libc::close(ep) };
            })
        };
        pin(0);
        Fixture {
            senders,
            stop,
            drain: Some(drain),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

fn sends(c: &mut Criterion) {
    let Ok(mut ring) = SendRing::new() else {
        eprintln!("io_uring unavailable here: nothing to compare");
        return;
    };
    let f = Fixture::new();
    let payload = vec![b'x'; BYTES];
    let full = AtomicU64::new(0);
    let mut g = c.benchmark_group("send_64_connections_1200_bytes");
    g.throughput(Throughput::Elements(CONNS as u64));
    g.bench_function("send(2) each", |b| {
        b.iter(|| {
            for s in &f.senders {
                let sock = socket2::SockRef::from(s);
                if sock
                    .send_with_flags(&payload, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                    .is_err()
                {
                    full.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    let mut buf = Vec::with_capacity(CONNS * BYTES);
    let mut batch = Vec::new();
    for (i, s) in f.senders.iter().enumerate() {
        buf.extend_from_slice(&payload);
        batch.push(BatchSend {
            fd: s.as_raw_fd(),
            range: i * BYTES..(i + 1) * BYTES,
        });
    }
    let mut results = [0i32; MAX_BATCH];
    g.bench_function("io_uring, one submission", |b| {
        b.iter(|| {
            ring.send_all(&buf, &batch, &mut results).expect("ring");
            full.fetch_add(
                results.iter().filter(|r| **r < 0).count() as u64,
                Ordering::Relaxed,
            );
        })
    });
    g.finish();
    eprintln!(
        "sends refused as full (drain behind): {}",
        full.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, sends);
criterion_main!(benches);
