//! Not an API: a thin wrapper that lets the fuzz targets (`crates/fuzz`) and the corpus replay test
//! drive the inbound frame tracker, which is otherwise private to the session's read path.

use crate::inbound::{FrameTracker as Inner, WireViolation};

/// What the tracker found wrong with a client byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A client frame without a mask (close 1002).
    Unmasked,
    /// A (reassembled) message over the limit, with its size so far (close 1009).
    TooBig(u64),
}

/// The inbound frame-boundary tracker of one connection.
#[derive(Debug)]
pub struct FrameTracker(Inner);

impl FrameTracker {
    /// A tracker for messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self(Inner::new(max_message))
    }

    /// How many of `staged` bytes the session would hand to fastwebsockets next (one frame's worth).
    pub fn deliverable(&self, staged: &[u8]) -> usize {
        self.0.deliverable(staged)
    }

    /// Feeds delivered bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        self.0.feed(bytes).map_err(|v| match v {
            WireViolation::Unmasked => Violation::Unmasked,
            WireViolation::TooBig(n) => Violation::TooBig(n),
        })
    }

    /// True between frames, outside a fragmented message.
    pub fn at_rest(&self) -> bool {
        self.0.at_rest()
    }
}
