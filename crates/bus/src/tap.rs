//! An optional observer of every tick the bus accepts, for forwarding ticks elsewhere (the NATS
//! sink of an ingest node) without being a subscriber of every topic.

use std::fmt;

use tickcast_core::{Frame, Seq, TsMicros};

use crate::topic::TopicState;

/// Sees every tick the bus accepted (stale ticks are not shown), on the publishing thread, inside
/// the publish call: it must not block (hand the frame to a bounded queue and return).
pub trait BusTap: Send + Sync + fmt::Debug {
    /// Tick `seq` of `topic` with ingest time `ts`, encoded as `frame`, was accepted.
    fn published(&self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: &Frame);
}
