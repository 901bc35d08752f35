//! Which ingest node publishes, decided as a pure function of (what this node heard, now, timing).
//!
//! Leadership is a lease kept in the JetStream stream itself: the leader appends a heartbeat to the
//! reserved subject `<prefix>._leader` every [`LeaseTiming::renew`], and every append it makes
//! (heartbeats and ticks) carries `Nats-Expected-Last-Sequence`, so the stream refuses it once
//! anyone else has appended. A standby that has heard no heartbeat for [`LeaseTiming::lease`]
//! tries to take over by appending its own heartbeat, also conditional on the stream's last
//! sequence: of several standbys exactly one append can succeed, and a leader that was only paused
//! finds its next append refused and steps down. This module only says *when* to try and what the
//! node is; [`super::sink`] does the I/O.

use std::time::{Duration, Instant};

/// How leadership is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How often the leader appends a heartbeat.
    pub renew: Duration,
    /// Silence after which a standby takes over; several `renew` periods, so a heartbeat or two
    /// late (GC-free here, but a busy NATS or a loaded host) does not cause a takeover.
    pub lease: Duration,
}

/// Default of [`LeaseTiming::renew`].
pub const DEFAULT_RENEW: Duration = Duration::from_millis(250);
/// Default of [`LeaseTiming::lease`]: takeover within ~1.5 s of the leader's last heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_millis(1500);

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            renew: DEFAULT_RENEW,
            lease: DEFAULT_LEASE,
        }
    }
}

impl LeaseTiming {
    /// Checks that the lease outlasts a few renewals (else one late heartbeat deposes a leader).
    pub fn validate(&self) -> Result<(), String> {
        if self.renew < Duration::from_millis(10) {
            return Err("renew_ms must be >= 10".into());
        }
        if self.lease < self.renew * 3 {
            return Err("lease_ms must be at least 3 x renew_ms".into());
        }
        Ok(())
    }
}

/// What this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Feeds run but publish nothing; waiting for the leader's lease to lapse.
    Standby,
    /// Publishing; `term` is the stream sequence of the heartbeat that won the lease.
    Leader {
        /// The term this node leads.
        term: u64,
    },
}

/// What the node should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until this instant (or until something is heard).
    WaitUntil(Instant),
    /// Standby: the lease lapsed; try to take over.
    TakeOver,
    /// Leader: append a heartbeat.
    Renew,
}

/// Leadership state of one ingest node.
#[derive(Debug, Clone)]
pub struct Election {
    role: Role,
    /// When the current leader was last heard (a standby), or this node last renewed (a leader).
    last: Instant,
    /// The highest term heard of, ours included: a heartbeat of a lower term is a stale one.
    term: u64,
}

impl Election {
    /// A standby that last heard a leader at `heard` (when it started, or the stored heartbeat's
    /// time): it waits for the rest of that lease before trying.
    pub fn new(heard: Instant) -> Self {
        Self {
            role: Role::Standby,
            last: heard,
            term: 0,
        }
    }

    /// What this node is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// What to do at `now`.
    pub fn next(&self, now: Instant, timing: &LeaseTiming) -> Action {
        let (due, action) = match self.role {
            Role::Standby => (self.last + timing.lease, Action::TakeOver),
            Role::Leader { .. } => (self.last + timing.renew, Action::Renew),
        };
        if now >= due {
            action
        } else {
            Action::WaitUntil(due)
        }
    }

    /// A heartbeat of `term` was heard (through the stream, so the stream accepted it). A leader
    /// hearing a newer term than its own has been deposed; returns true if this node steps down.
    pub fn heard(&mut self, term: u64, now: Instant) -> bool {
        if term < self.term {
            return false;
        }
        self.term = term;
        match self.role {
            Role::Standby => {
                self.last = now;
                false
            }
            Role::Leader { term: ours } if term > ours => {
                self.step_down(now);
                true
            }
            Role::Leader { .. } => false,
        }
    }

    /// This node's heartbeat won the lease as stream sequence `term`.
    pub fn took_over(&mut self, term: u64, now: Instant) {
        self.role = Role::Leader { term };
        self.term = self.term.max(term);
        self.last = now;
    }

    /// A takeover attempt lost (someone appended first): wait a whole lease again.
    pub fn lost(&mut self, now: Instant) {
        self.last = now;
    }

    /// The leader appended a heartbeat at `now`.
    pub fn renewed(&mut self, now: Instant) {
        self.last = now;
    }

    /// The stream refused an append (or NATS failed one): stop publishing and wait a whole lease
    /// before trying again, so a new leader is heard first if there is one.
    pub fn step_down(&mut self, now: Instant) {
        self.role = Role::Standby;
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_standby_takes_over_only_after_a_whole_lease_of_silence() {
        let t = LeaseTiming::default();
        let t0 = Instant::now();
        let mut e = Election::new(t0);
        assert_eq!(e.next(t0, &t), Action::WaitUntil(t0 + t.lease));
        // A heartbeat restarts the wait.
        e.heard(7, t0 + ms(1000));
        assert_eq!(e.next(t0 + ms(2000), &t), Action::WaitUntil(t0 + ms(2500)));
        assert_eq!(e.next(t0 + ms(2500), &t), Action::TakeOver);
        // A stale heartbeat (a lower term than one heard) does not.
        e.heard(3, t0 + ms(2400));
        assert_eq!(e.next(t0 + ms(2500), &t), Action::TakeOver);
    }

    #[test]
    fn a_leader_renews_and_steps_down_when_a_newer_term_is_heard() {
        let t = LeaseTiming::default();
        let t0 = Instant::now();
        let mut e = Election::new(t0);
        e.took_over(10, t0);
        assert_eq!(e.role(), Role::Leader { term: 10 });
        assert_eq!(e.next(t0 + ms(100), &t), Action::WaitUntil(t0 + t.renew));
        assert_eq!(e.next(t0 + t.renew, &t), Action::Renew);
        e.renewed(t0 + t.renew);
        // Its own heartbeats come back through the stream: not a reason to step down.
        assert!(!e.heard(10, t0 + ms(300)));
        assert_eq!(e.role(), Role::Leader { term: 10 });
        assert!(e.heard(42, t0 + ms(400)), "a newer term deposes");
        assert_eq!(e.role(), Role::Standby);
        assert_eq!(e.next(t0 + ms(500), &t), Action::WaitUntil(t0 + ms(1900)));
    }

    #[test]
    fn a_lost_attempt_or_a_refused_append_waits_a_whole_lease() {
        let t = LeaseTiming::default();
        let t0 = Instant::now();
        let mut e = Election::new(t0);
        e.lost(t0 + ms(1500));
        assert_eq!(e.next(t0 + ms(1600), &t), Action::WaitUntil(t0 + ms(3000)));
        e.took_over(5, t0 + ms(3000));
        e.step_down(t0 + ms(3100));
        assert_eq!(e.role(), Role::Standby);
        assert_eq!(e.next(t0 + ms(3200), &t), Action::WaitUntil(t0 + ms(4600)));
    }

    #[test]
    fn timing_is_validated() {
        assert!(LeaseTiming::default().validate().is_ok());
        let short = LeaseTiming {
            renew: ms(500),
            lease: ms(1000),
        };
        assert!(short.validate().unwrap_err().contains("lease_ms"));
        let tiny = LeaseTiming {
            renew: ms(1),
            lease: ms(1000),
        };
        assert!(tiny.validate().unwrap_err().contains("renew_ms"));
    }
}
