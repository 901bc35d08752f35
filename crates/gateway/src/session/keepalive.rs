//! What the shard's sweep does to one session, decided from its timers alone: ping a quiet
//! client, close one that stopped answering, kill one whose socket has refused writes too long,
//! close one whose credential expired. A pure function of (timers, now, deadlines), tested with
//! made-up instants, the way quinn-proto tests its timeouts; the sweep only applies the answer.

use std::time::{Duration, Instant};

use crate::config::GatewayConfig;

/// A session's clocks, as the sweep reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timers {
    /// Last time the client sent anything (any frame, pongs included).
    pub heard: Instant,
    /// When the server pinged the client, if it has not answered since.
    pub pinged: Option<Instant>,
    /// Since when the socket has refused writes, while it does.
    pub stalled_since: Option<Instant>,
    /// When the credential expires, if it does.
    pub expires_at: Option<Instant>,
}

/// The limits the decision applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// Silence after which the client is pinged.
    pub ping_interval: Duration,
    /// Silence after a ping after which the client is closed.
    pub pong_timeout: Duration,
    /// Longest the socket may refuse writes.
    pub write_timeout: Duration,
}

impl Deadlines {
    /// The deadlines `config` sets.
    pub(crate) fn of(config: &GatewayConfig) -> Self {
        Self {
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            write_timeout: config.write_timeout,
        }
    }
}

/// What to do to a session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Leave it.
    Nothing,
    /// Send a ping and remember when.
    Ping,
    /// Its credential expired: close 1008 "token expired".
    CloseExpired,
    /// Its socket refused writes for `write_timeout`: end it without a close frame (none would go
    /// out).
    KillStalled,
    /// It did not answer a ping within `pong_timeout`: close 1001.
    CloseUnresponsive,
}

/// Decides what the sweep does to a session with `timers` at `now`. An expired credential comes
/// first (it is a policy, whatever the socket does), then a stalled socket (a close frame could
/// not be written anyway), then keepalive.
pub(crate) fn decide(timers: &Timers, now: Instant, d: &Deadlines) -> Action {
    let since = |t: Instant| now.saturating_duration_since(t);
    if timers.expires_at.is_some_and(|at| now >= at) {
        return Action::CloseExpired;
    }
    if timers
        .stalled_since
        .is_some_and(|t| since(t) >= d.write_timeout)
    {
        return Action::KillStalled;
    }
    match timers.pinged {
        Some(at) if since(at) >= d.pong_timeout => Action::CloseUnresponsive,
        Some(_) => Action::Nothing,
        None if since(timers.heard) >= d.ping_interval => Action::Ping,
        None => Action::Nothing,
    }
}

/// How often the sweep runs: a quarter of the shortest deadline, within 10 ms..1 s, so each is
/// enforced within a quarter of its length (and a token expiry within a second).
pub(crate) fn sweep_period(d: &Deadlines) -> Duration {
    (d.ping_interval.min(d.pong_timeout).min(d.write_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines {
        ping_interval: Duration::from_secs(20),
        pong_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(30),
    };

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn quiet_since(t0: Instant) -> Timers {
        Timers {
            heard: t0,
            pinged: None,
            stalled_since: None,
            expires_at: None,
        }
    }

    #[test]
    fn a_quiet_client_is_pinged_then_closed_if_it_does_not_answer() {
        let t0 = Instant::now();
        let mut t = quiet_since(t0);
        assert_eq!(decide(&t, at(t0, 19), &D), Action::Nothing);
        assert_eq!(decide(&t, at(t0, 20), &D), Action::Ping);
        t.pinged = Some(at(t0, 20));
        assert_eq!(
            decide(&t, at(t0, 29), &D),
            Action::Nothing,
            "waits for the pong"
        );
        assert_eq!(decide(&t, at(t0, 30), &D), Action::CloseUnresponsive);
    }

    #[test]
    fn an_answer_restarts_the_keepalive_clock() {
        let t0 = Instant::now();
        // The reader clears `pinged` and moves `heard` on any frame.
        let t = quiet_since(at(t0, 25));
        assert_eq!(decide(&t, at(t0, 44), &D), Action::Nothing);
        assert_eq!(decide(&t, at(t0, 45), &D), Action::Ping);
    }

    #[test]
    fn a_stalled_socket_is_killed_after_the_write_timeout_even_while_pinged() {
        let t0 = Instant::now();
        let mut t = quiet_since(at(t0, 100));
        t.stalled_since = Some(t0);
        assert_eq!(decide(&t, at(t0, 29), &D), Action::Nothing);
        t.pinged = Some(at(t0, 101));
        assert_eq!(decide(&t, at(t0, 30), &D), Action::KillStalled);
    }

    #[test]
    fn an_expired_credential_closes_first() {
        let t0 = Instant::now();
        let mut t = quiet_since(t0);
        t.expires_at = Some(at(t0, 5));
        t.stalled_since = Some(t0);
        assert_eq!(decide(&t, at(t0, 4), &D), Action::Nothing);
        assert_eq!(decide(&t, at(t0, 5), &D), Action::CloseExpired);
        assert_eq!(decide(&t, at(t0, 60), &D), Action::CloseExpired);
    }

    #[test]
    fn a_clock_that_is_behind_the_timers_decides_nothing() {
        let t0 = Instant::now();
        let t = quiet_since(at(t0, 10));
        assert_eq!(decide(&t, t0, &D), Action::Nothing);
    }

    #[test]
    fn the_sweep_runs_at_a_quarter_of_the_shortest_deadline_within_bounds() {
        assert_eq!(
            sweep_period(&D),
            Duration::from_millis(2500).min(Duration::from_secs(1))
        );
        let short = Deadlines {
            pong_timeout: Duration::from_millis(200),
            ..D
        };
        assert_eq!(sweep_period(&short), Duration::from_millis(50));
        let tiny = Deadlines {
            write_timeout: Duration::from_millis(1),
            ..D
        };
        assert_eq!(sweep_period(&tiny), Duration::from_millis(10));
    }
}
