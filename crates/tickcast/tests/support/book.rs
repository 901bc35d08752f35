//! [`BookBuilder`]: an order book kept from a client's `book` messages by the test itself (none of
//! the server's code), checking every message's checksum as Kraken's client code would.

use std::collections::BTreeMap;

use serde_json::Value;

/// Levels the checksum covers each side.
const CHECKSUM_LEVELS: usize = 10;

/// A level's price as an exact key: the value times 10^18.
fn key(s: &str) -> Result<i128, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 18 || int.is_empty() && frac.is_empty() {
        return Err(format!("unusable decimal {s:?}"));
    }
    let mut digits = String::from(int);
    digits.push_str(frac);
    digits.extend(std::iter::repeat_n('0', 18 - frac.len()));
    digits.parse().map_err(|_| format!("not a decimal: {s:?}"))
}

/// A price or size as the checksum writes it: without the `.` and without leading zeros.
fn checksum_digits(s: &str, out: &mut String) {
    let digits: String = s.chars().filter(|c| *c != '.').collect();
    let trimmed = digits.trim_start_matches('0');
    out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
}

/// CRC-32 (IEEE), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One book, built from snapshots and deltas.
#[derive(Debug, Default)]
pub struct BookBuilder {
    depth: usize,
    /// Key → (price as sent, size as sent).
    bids: BTreeMap<i128, (String, String)>,
    asks: BTreeMap<i128, (String, String)>,
    /// Whether a snapshot came (deltas before one are an error).
    synced: bool,
    /// Messages whose checksum matched.
    pub verified: u64,
    /// Snapshots applied.
    pub snapshots: u64,
}

fn levels(v: &Value, side: &str) -> Result<Vec<(String, String)>, String> {
    v[side]
        .as_array()
        .ok_or(format!("no {side}: {v}"))?
        .iter()
        .map(|l| match (l[0].as_str(), l[1].as_str()) {
            (Some(p), Some(s)) => Ok((p.to_string(), s.to_string())),
            _ => Err(format!("level is not [price, size] strings: {l}")),
        })
        .collect()
}

impl BookBuilder {
    /// Applies one `book` message and checks its checksum.
    pub fn apply(&mut self, v: &Value) -> Result<(), String> {
        if v["snapshot"].as_bool() == Some(true) {
            self.depth = v["depth"]
                .as_u64()
                .ok_or(format!("snapshot without depth: {v}"))? as usize;
            self.bids.clear();
            self.asks.clear();
            self.synced = true;
            self.snapshots += 1;
        } else if !self.synced {
            return Err(format!("a delta before any snapshot: {v}"));
        }
        for (side, book) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
            for (p, s) in levels(v, side)? {
                let k = key(&p)?;
                if key(&s)? == 0 {
                    book.remove(&k);
                } else {
                    book.insert(k, (p, s));
                }
            }
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
        if let (Some((b, _)), Some((a, _))) =
            (self.bids.last_key_value(), self.asks.first_key_value())
        {
            if b >= a {
                return Err(format!("crossed after {v}"));
            }
        }
        let want = v["checksum"].as_u64().ok_or(format!("no checksum: {v}"))?;
        let got = self.checksum();
        if u64::from(got) != want {
            return Err(format!("checksum {want} sent, {got} computed, after {v}"));
        }
        self.verified += 1;
        Ok(())
    }

    /// Kraken's checksum of the book now.
    pub fn checksum(&self) -> u32 {
        let mut s = String::new();
        for (p, q) in self.asks.values().take(CHECKSUM_LEVELS) {
            checksum_digits(p, &mut s);
            checksum_digits(q, &mut s);
        }
        for (p, q) in self.bids.values().rev().take(CHECKSUM_LEVELS) {
            checksum_digits(p, &mut s);
            checksum_digits(q, &mut s);
        }
        crc32(s.as_bytes())
    }

    /// Levels each side now.
    pub fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of docs/protocol.md.
    #[test]
    fn the_documented_checksums_verify() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let mut b = BookBuilder::default();
        b.apply(&json!({"snapshot":true,"depth":10,"bids":[["64000.5","1.25"]],"asks":[["64001.0","0.5"]],"checksum":2238815152u64}))
            .unwrap();
        b.apply(
            &json!({"snapshot":false,"bids":[["64000.5","0"]],"asks":[],"checksum":878852093u64}),
        )
        .unwrap();
        assert!(b
            .apply(&json!({"snapshot":false,"bids":[["1","1"]],"asks":[],"checksum":1u64}))
            .is_err());
    }
}
