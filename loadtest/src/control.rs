//! The run's phase, shared by the orchestrator (which advances it) and every receive and
//! publish thread (which read it to decide what to count and when to stop).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connections are being opened.
    Ramp = 0,
    /// Everything is open; nothing is counted into the window yet.
    Warmup = 1,
    /// The measured window.
    Window = 2,
    /// After the window: stalled readers read what piled up, to learn how the server treated them.
    Drain = 3,
    /// Threads send their last report and exit.
    Stop = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Ramp,
            1 => Phase::Warmup,
            2 => Phase::Window,
            3 => Phase::Drain,
            _ => Phase::Stop,
        }
    }

    /// Name used in the progress line and the timeline.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Warmup => "warmup",
            Phase::Window => "window",
            Phase::Drain => "drain",
            Phase::Stop => "stop",
        }
    }
}

/// Longest a run can last: ramp, warm-up and window are each capped at an hour by the
/// settings, plus drain and slack. Threads waiting for [`Phase::Stop`] give up after this, so
/// they end even if the orchestrator is gone.
pub const MAX_RUN: Duration = Duration::from_secs(3 * 3_600 + 600);

/// Shared run state: the phase and the run's start instant.
#[derive(Debug)]
pub struct Control {
    phase: AtomicU8,
    /// When the run started; ramp pacing and timelines count from here.
    pub start: Instant,
}

impl Control {
    /// A run starting now, in [`Phase::Ramp`].
    pub fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Ramp as u8),
            start: Instant::now(),
        }
    }

    /// The current phase. Relaxed: a message counted one message early or late in a phase
    /// change does not matter, and this is read once per received message.
    #[inline]
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// Moves to `p` (phases only go forward).
    pub fn set(&self, p: Phase) {
        self.phase.fetch_max(p as u8, Ordering::Release);
    }

    /// Sleeps in short steps until the phase reaches `p` or `limit` passes; returns whether it
    /// was reached.
    pub async fn wait_for(&self, p: Phase, limit: Duration) -> bool {
        let deadline = Instant::now().checked_add(limit);
        while self.phase() < p {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_go_forward() {
        let c = Control::new();
        assert_eq!(c.phase(), Phase::Ramp);
        c.set(Phase::Window);
        c.set(Phase::Warmup);
        assert_eq!(c.phase(), Phase::Window);
        c.set(Phase::Stop);
        assert_eq!(c.phase(), Phase::Stop);
    }
}
