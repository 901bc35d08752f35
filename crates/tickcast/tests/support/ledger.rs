//! [`SeqLedger`]: follows each topic's seqs through one client's stream and checks protocol v2's
//! rule that nothing is lost silently.

use std::collections::HashMap;

use serde_json::Value;

/// Per topic, the last seq a client has (or was told it will not get). A tick must be the next
/// seq, or the seqs between must have been announced by a `gap` marker that starts right after
/// the last one; a tick is never older than what came before.
#[derive(Debug, Default)]
pub struct SeqLedger {
    last: HashMap<String, u64>,
    /// Ticks seen.
    pub ticks: u64,
    /// `gap` markers seen, by reason.
    pub gaps: HashMap<String, u64>,
    /// Seqs the markers covered.
    pub announced: u64,
}

impl SeqLedger {
    /// Starts `topic` at `seq` (what the client had before, e.g. when it recovers).
    pub fn start(&mut self, topic: &str, seq: u64) {
        self.last.insert(topic.to_string(), seq);
    }

    /// The last seq of `topic`, if any message of it came.
    pub fn last(&self, topic: &str) -> Option<u64> {
        self.last.get(topic).copied()
    }

    /// Takes one server message; ticks and gaps are checked, anything else is ignored.
    pub fn observe(&mut self, v: &Value) -> Result<(), String> {
        let topic = || {
            v["topic"]
                .as_str()
                .map(str::to_string)
                .ok_or(format!("no topic: {v}"))
        };
        let int = |k: &str| v[k].as_u64().ok_or(format!("no {k}: {v}"));
        match v["type"].as_str() {
            // Every message that takes a seq of its topic: ticks, books (a snapshot after a
            // `resync` marker is the next seq), trades, candles.
            Some("tick" | "book" | "trade" | "bar") => {
                let (topic, seq) = (topic()?, int("seq")?);
                self.ticks += 1;
                match self.last.insert(topic.clone(), seq) {
                    Some(last) if seq <= last => Err(format!("{topic}: seq {seq} after {last}")),
                    Some(last) if seq > last + 1 => Err(format!(
                        "{topic}: seq {seq} after {last}, {} seqs missing without a gap marker",
                        seq - last - 1
                    )),
                    _ => Ok(()),
                }
            }
            Some("gap") => {
                let (topic, from, to) = (topic()?, int("from")?, int("to")?);
                let reason = v["reason"].as_str().ok_or(format!("no reason: {v}"))?;
                *self.gaps.entry(reason.to_string()).or_default() += 1;
                if to < from {
                    return Err(format!("empty gap: {v}"));
                }
                self.announced += to - from + 1;
                match self.last.insert(topic.clone(), to) {
                    Some(last) if from != last + 1 => {
                        Err(format!("{topic}: gap {from}..={to} after seq {last}"))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Markers seen in all.
    pub fn markers(&self) -> u64 {
        self.gaps.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn announced_jumps_pass_and_silent_ones_fail() {
        let mut l = SeqLedger::default();
        let tick = |s: u64| json!({"type":"tick","topic":"t.a","seq":s});
        l.observe(&tick(5)).unwrap();
        l.observe(&tick(6)).unwrap();
        l.observe(&json!({"type":"gap","topic":"t.a","from":7,"to":9,"reason":"conflated"}))
            .unwrap();
        l.observe(&tick(10)).unwrap();
        assert!(l.observe(&tick(12)).is_err(), "11 missing");
        assert!(l.observe(&tick(12)).is_err(), "duplicate");
        assert_eq!((l.ticks, l.markers(), l.announced), (5, 1, 3));
    }
}
