//! When a lingering close stops: a pure function of what the connection has seen since its close
//! frame went out ([`Progress`]), the time and the [`LingerLimits`], tested with made-up instants
//! like the keepalive decisions. The lingering task only reads, records what it read, and applies
//! the answer.

use std::time::{Duration, Instant};

use crate::config::LingerLimits;
use crate::metrics::LingerOutcome;

/// How the client's side of the stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Still open: more bytes may come.
    Open,
    /// End of stream: the client closed its side.
    Closed,
    /// A read failed (typically a reset).
    Failed,
}

/// What a lingering connection has seen since its close frame and FIN went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// When the linger began.
    pub since: Instant,
    /// When the client last sent bytes (`since` until it does).
    pub heard: Instant,
    /// Bytes read and thrown away.
    pub discarded: u64,
    /// Whether the stream ended, and how.
    pub peer: Peer,
}

impl Progress {
    /// A linger beginning at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            since: now,
            heard: now,
            discarded: 0,
            peer: Peer::Open,
        }
    }

    /// Records a read that returned `n` bytes at `now`; 0 is end of stream.
    pub(crate) fn read(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.peer = Peer::Closed;
        } else {
            self.discarded = self.discarded.saturating_add(n as u64);
            self.heard = now;
        }
    }

    /// Records a failed read.
    pub(crate) fn failed(&mut self) {
        self.peer = Peer::Failed;
    }
}

/// What the lingering task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep reading; decide again at the latest after this long, when a limit may be reached
    /// without any byte arriving.
    Wait(Duration),
    /// Close the socket now.
    Stop(LingerOutcome),
}

/// Decides whether a connection that has seen `p` keeps lingering at `now`. The client ending the
/// stream wins over every limit (all it sent was read, which is the point), then the byte limit
/// (checked before reading more), then the total time, then the silence.
pub(crate) fn decide(p: &Progress, now: Instant, limits: &LingerLimits) -> Step {
    match p.peer {
        Peer::Closed => return Step::Stop(LingerOutcome::ClientClosed),
        Peer::Failed => return Step::Stop(LingerOutcome::Error),
        Peer::Open => {}
    }
    if p.discarded >= limits.max_bytes {
        return Step::Stop(LingerOutcome::ByteLimit);
    }
    let elapsed = now.saturating_duration_since(p.since);
    if elapsed >= limits.time {
        return Step::Stop(LingerOutcome::TimeLimit);
    }
    let quiet = now.saturating_duration_since(p.heard);
    if quiet >= limits.timeout {
        return Step::Stop(LingerOutcome::Idle);
    }
    Step::Wait((limits.time - elapsed).min(limits.timeout - quiet))
}

/// How many bytes the next read may take: never past `max_bytes`, so the byte limit is exact rather
/// than overshot by one read. Zero once the limit is reached (and then [`decide`] stops before any
/// read).
pub(crate) fn read_budget(p: &Progress, limits: &LingerLimits) -> usize {
    let left = limits.max_bytes.saturating_sub(p.discarded);
    usize::try_from(left).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: LingerLimits = LingerLimits {
        time: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        max_bytes: 1000,
    };

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_client_that_closes_ends_the_linger_whatever_else_holds() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0);
        p.read(1000, ms(t0, 100));
        p.read(0, ms(t0, 2500));
        assert_eq!(
            decide(&p, ms(t0, 9000), &L),
            Step::Stop(LingerOutcome::ClientClosed)
        );
        let mut p = Progress::new(t0);
        p.failed();
        assert_eq!(decide(&p, t0, &L), Step::Stop(LingerOutcome::Error));
    }

    #[test]
    fn a_silent_client_is_waited_for_until_the_timeout() {
        let t0 = Instant::now();
        let p = Progress::new(t0);
        assert_eq!(decide(&p, t0, &L), Step::Wait(Duration::from_millis(500)));
        assert_eq!(
            decide(&p, ms(t0, 499), &L),
            Step::Wait(Duration::from_millis(1))
        );
        assert_eq!(decide(&p, ms(t0, 500), &L), Step::Stop(LingerOutcome::Idle));
    }

    #[test]
    fn each_read_restarts_the_silence_but_not_the_total_time() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0);
        for at in (400..2000).step_by(400) {
            p.read(1, ms(t0, at));
            assert!(matches!(decide(&p, ms(t0, at + 300), &L), Step::Wait(_)));
        }
        // Heard at 1600: silence would end at 2100, the total time ends first.
        assert_eq!(
            decide(&p, ms(t0, 1700), &L),
            Step::Wait(Duration::from_millis(300))
        );
        assert_eq!(
            decide(&p, ms(t0, 2000), &L),
            Step::Stop(LingerOutcome::TimeLimit)
        );
    }

    #[test]
    fn the_byte_limit_is_exact_and_checked_before_time() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0);
        assert_eq!(read_budget(&p, &L), 1000);
        p.read(990, ms(t0, 10));
        assert_eq!(read_budget(&p, &L), 10, "never reads past the limit");
        assert!(matches!(decide(&p, ms(t0, 10), &L), Step::Wait(_)));
        p.read(10, ms(t0, 20));
        assert_eq!(read_budget(&p, &L), 0);
        assert_eq!(
            decide(&p, ms(t0, 5000), &L),
            Step::Stop(LingerOutcome::ByteLimit)
        );
    }

    #[test]
    fn a_clock_behind_the_progress_waits_rather_than_stopping() {
        let t0 = Instant::now();
        let mut p = Progress::new(ms(t0, 100));
        p.read(1, ms(t0, 200));
        assert_eq!(decide(&p, t0, &L), Step::Wait(Duration::from_millis(500)));
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let t0 = Instant::now();
        let l = LingerLimits {
            time: Duration::MAX,
            timeout: Duration::MAX,
            max_bytes: u64::MAX,
        };
        let p = Progress::new(t0);
        assert_eq!(
            decide(&p, ms(t0, 1), &l),
            Step::Wait(Duration::MAX - Duration::from_millis(1))
        );
        assert_eq!(read_budget(&p, &l), usize::MAX);
    }
}
