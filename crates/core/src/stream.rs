//! What the server tells a subscriber about a topic's stream besides its ticks (protocol v2): the
//! epoch of its seq space, the outcome of a recovery, `gap` markers for seqs it will not get, and
//! `heartbeat`s for a quiet topic. Markers and heartbeats are complete frames, like ticks.

use std::fmt;

use crate::frame::Frame;
use crate::json;
use crate::tick::{Seq, TsMicros};
use crate::topic::Topic;

/// Longest epoch accepted from a client, in bytes.
pub const MAX_EPOCH_LEN: usize = 16;

/// Names one seq space of a topic: it changes whenever the topic's seqs restart (a standalone node
/// restarted without its state), so a client's seq from an older epoch is never mistaken for one
/// of this epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Box<str>);

/// Why a string is not a valid epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// Empty or longer than [`MAX_EPOCH_LEN`].
    #[error("must be 1 to {MAX_EPOCH_LEN} bytes")]
    Length,
    /// A character outside ASCII letters, digits, `-` and `_`.
    #[error("may hold only ASCII letters, digits, - and _")]
    BadChar,
}

impl Epoch {
    /// Validates `s` as an epoch.
    pub fn new(s: &str) -> Result<Epoch, EpochError> {
        if s.is_empty() || s.len() > MAX_EPOCH_LEN {
            return Err(EpochError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(EpochError::BadChar);
        }
        Ok(Epoch(s.into()))
    }

    /// An epoch of 8 lowercase base-36 characters derived from `seed` (e.g. the start time and
    /// process id): distinct seeds give distinct epochs with overwhelming probability.
    pub fn from_seed(seed: u64) -> Epoch {
        // splitmix64: spreads nearby seeds (consecutive start times) over the whole range.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let s: String = (0..8)
            .map(|i| DIGITS[((z >> (i * 8)) % 36) as usize] as char)
            .collect();
        Epoch(s.into())
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a recovery (`since` on subscribe) could not be served; the snapshot follows instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRecovered {
    /// The history no longer holds the tick right after the client's seq (evicted by size or age).
    TooOld,
    /// The client's epoch is not the topic's: its seq belongs to another seq space.
    EpochChanged,
    /// The topic keeps no history (`history_size` 0), or never had the client's seq.
    NoHistory,
}

impl NotRecovered {
    /// Every reason.
    pub const ALL: [NotRecovered; 3] = [
        NotRecovered::TooOld,
        NotRecovered::EpochChanged,
        NotRecovered::NoHistory,
    ];

    /// The reason as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotRecovered::TooOld => "too_old",
            NotRecovered::EpochChanged => "epoch_changed",
            NotRecovered::NoHistory => "no_history",
        }
    }
}

/// Why a subscriber's stream of a topic skips seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// Replaced by a newer tick while the subscriber was behind (policy `conflate`).
    Conflated,
    /// Dropped while the subscriber was behind (policy `drop_oldest`).
    Dropped,
    /// Never reached this server: the feed's own seqs skipped.
    Upstream,
    /// Book deltas a lagging subscriber will not get: a fresh snapshot of the book follows
    /// instead (dropping deltas would corrupt the book).
    Resync,
}

impl GapReason {
    /// Every reason, so each metric label is exported before its first event.
    pub const ALL: [GapReason; 4] = [
        GapReason::Conflated,
        GapReason::Dropped,
        GapReason::Upstream,
        GapReason::Resync,
    ];

    /// The reason as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Conflated => "conflated",
            GapReason::Dropped => "dropped",
            GapReason::Upstream => "upstream",
            GapReason::Resync => "resync",
        }
    }
}

/// The `gap` marker: seqs `from..=to` of `topic` will not reach this subscriber.
pub fn gap_frame(topic: &Topic, from: Seq, to: Seq, reason: GapReason) -> Frame {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"type\":\"gap\",\"topic\":");
    json::write_str(&mut out, topic.as_str());
    out.extend_from_slice(b",\"from\":");
    json::write_u64(&mut out, from.0);
    out.extend_from_slice(b",\"to\":");
    json::write_u64(&mut out, to.0);
    out.extend_from_slice(b",\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Frame::text(&out)
}

/// The `reset` of a topic whose seq space started over upstream (new `epoch`): the ticks that
/// follow count from seq 1 of that epoch, and a `since` of the old epoch no longer recovers.
pub fn reset_frame(topic: &Topic, epoch: &Epoch) -> Frame {
    let mut out = Vec::with_capacity(64 + epoch.as_str().len());
    out.extend_from_slice(b"{\"type\":\"reset\",\"topic\":");
    json::write_str(&mut out, topic.as_str());
    out.extend_from_slice(b",\"epoch\":");
    json::write_str(&mut out, epoch.as_str());
    out.push(b'}');
    Frame::text(&out)
}

/// The `heartbeat` of a quiet topic: its latest seq and that tick's time (0 and 0 before its first
/// tick), and whether a feed currently serves it.
pub fn heartbeat_frame(topic: &Topic, seq: Seq, ts: TsMicros, feed_up: bool) -> Frame {
    let mut out = Vec::with_capacity(112);
    out.extend_from_slice(b"{\"type\":\"heartbeat\",\"topic\":");
    json::write_str(&mut out, topic.as_str());
    out.extend_from_slice(b",\"seq\":");
    json::write_u64(&mut out, seq.0);
    out.extend_from_slice(b",\"ts\":");
    json::write_u64(&mut out, ts.0);
    out.extend_from_slice(b",\"feed_up\":");
    out.extend_from_slice(if feed_up { b"true" } else { b"false" });
    out.push(b'}');
    Frame::text(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(f: &Frame) -> serde_json::Value {
        serde_json::from_slice(f.payload()).unwrap()
    }

    #[test]
    fn epochs_validate_and_differ_by_seed() {
        assert!(Epoch::new("k3f9").is_ok());
        assert_eq!(Epoch::new(""), Err(EpochError::Length));
        assert_eq!(Epoch::new(&"a".repeat(17)), Err(EpochError::Length));
        assert_eq!(Epoch::new("a b"), Err(EpochError::BadChar));
        let a = Epoch::from_seed(1);
        let b = Epoch::from_seed(2);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 8);
        assert!(Epoch::new(a.as_str()).is_ok(), "generated epochs are valid");
    }

    #[test]
    fn markers_are_protocol_json() {
        let t = Topic::new("ticker.AAPL").unwrap();
        let g = gap_frame(&t, Seq(1235), Seq(1240), GapReason::Conflated);
        assert_eq!(
            g.payload(),
            br#"{"type":"gap","topic":"ticker.AAPL","from":1235,"to":1240,"reason":"conflated"}"#
        );
        let h = heartbeat_frame(&t, Seq(1300), TsMicros(17), false);
        let v = json_of(&h);
        assert_eq!(v["type"], "heartbeat");
        assert_eq!(v["seq"], 1300);
        assert_eq!(v["ts"], 17);
        assert_eq!(v["feed_up"], false);
    }
}
