//! Zero-allocation scanner for the server's JSON messages.
//!
//! Every received frame goes through [`scan`], so it must cost far less than the socket read:
//! it walks the top-level object once, keeps slices into the frame for the string fields it
//! cares about, parses `seq`/`ts` (and a gap marker's `from`/`to`) as integers, skips everything
//! else, and stops as soon as a tick's `type`, `topic`, `seq` and `ts` are known (tickcast sends
//! them first), or a gap marker's `type`, `topic`, `from`, `to` and `reason`. Ticks and gap
//! markers in tickcast's own field order each have a fast path; the tick's is tried first.

use memchr::memchr2;

/// What kind of server message a frame carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{"type":"tick",...}`: market data.
    Tick,
    /// `{"type":"book",...}`: an order book snapshot or delta (seq-checked like ticks).
    Book,
    /// `{"type":"trade",...}`: one trade (seq-checked like ticks).
    Trade,
    /// `{"type":"bar",...}`: a candle (seq-checked like ticks; no `ts`).
    Bar,
    /// Subscription acknowledged.
    Subscribed,
    /// Unsubscription acknowledged.
    Unsubscribed,
    /// Answer to an application-level ping.
    Pong,
    /// The server rejected a request.
    Error,
    /// `{"type":"gap",...}`: seqs `from..=to` of `topic` will not arrive (protocol v2).
    Gap,
    /// `{"type":"heartbeat",...}`: a quiet topic's latest seq; counted, never checked.
    Heartbeat,
    /// Any other `type`, counted but not interpreted.
    Other,
    /// No `type` field, or not a JSON object at all.
    Malformed,
}

impl Kind {
    /// Number of kinds, for per-kind counters.
    pub const COUNT: usize = 12;

    /// Stable index for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A data message of its topic (tick, book, trade, bar): carries a `seq` that is checked.
    #[inline]
    pub fn is_data(self) -> bool {
        matches!(self, Kind::Tick | Kind::Book | Kind::Trade | Kind::Bar)
    }

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tick => "tick",
            Kind::Book => "book",
            Kind::Trade => "trade",
            Kind::Bar => "bar",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribed => "unsubscribed",
            Kind::Pong => "pong",
            Kind::Error => "error",
            Kind::Gap => "gap",
            Kind::Heartbeat => "heartbeat",
            Kind::Other => "other",
            Kind::Malformed => "malformed",
        }
    }

    /// All kinds in index order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::Tick,
        Kind::Book,
        Kind::Trade,
        Kind::Bar,
        Kind::Subscribed,
        Kind::Unsubscribed,
        Kind::Pong,
        Kind::Error,
        Kind::Gap,
        Kind::Heartbeat,
        Kind::Other,
        Kind::Malformed,
    ];
}

/// Why a gap marker says seqs are missing (its `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// Replaced by a newer tick while the client was behind (server policy `conflate`).
    Conflated,
    /// Dropped while the client was behind (policy `drop_oldest`, or the server's shard inbox).
    Dropped,
    /// Never reached the server: the feed's own seqs skipped.
    Upstream,
    /// Book deltas the client was too far behind for, replaced by the snapshot that follows.
    Resync,
    /// A reason this load generator does not know, or none.
    Unknown,
}

impl GapReason {
    /// Number of reasons, for per-reason counters.
    pub const COUNT: usize = 5;

    /// All reasons in index order.
    pub const ALL: [GapReason; GapReason::COUNT] = [
        GapReason::Conflated,
        GapReason::Dropped,
        GapReason::Upstream,
        GapReason::Resync,
        GapReason::Unknown,
    ];

    /// Stable index for per-reason counters.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason as the protocol spells it (`unknown` for anything else).
    pub fn name(self) -> &'static str {
        match self {
            GapReason::Conflated => "conflated",
            GapReason::Dropped => "dropped",
            GapReason::Upstream => "upstream",
            GapReason::Resync => "resync",
            GapReason::Unknown => "unknown",
        }
    }

    /// The reason a marker's raw `reason` bytes name.
    #[inline]
    pub fn parse(b: &[u8]) -> GapReason {
        match b {
            b"conflated" => GapReason::Conflated,
            b"dropped" => GapReason::Dropped,
            b"upstream" => GapReason::Upstream,
            b"resync" => GapReason::Resync,
            _ => GapReason::Unknown,
        }
    }
}

/// The fields of one message the load generator uses; slices borrow the frame payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    /// Message type.
    pub kind: Kind,
    /// `topic` (ticks, gap markers, heartbeats), raw bytes between the quotes.
    pub topic: &'a [u8],
    /// `seq` (ticks, heartbeats).
    pub seq: Option<u64>,
    /// `ts`, unix microseconds at ingest (ticks).
    pub ts: Option<u64>,
    /// `code` (errors), raw bytes between the quotes.
    pub code: &'a [u8],
    /// `from`, the first seq a gap marker covers.
    pub from: Option<u64>,
    /// `to`, the last seq a gap marker covers.
    pub to: Option<u64>,
    /// `reason` of a gap marker ([`GapReason::Unknown`] when absent or not understood).
    pub reason: GapReason,
}

/// What every tickcast tick starts with (the server writes fields in a fixed order).
const TICK_PREFIX: &[u8] = b"{\"type\":\"tick\",\"topic\":\"";

/// What every tickcast gap marker starts with (fixed field order, like ticks).
const GAP_PREFIX: &[u8] = b"{\"type\":\"gap\",\"topic\":\"";

/// Scans one text frame. Never fails: anything unreadable is [`Kind::Malformed`], and a tick
/// missing `topic` or `seq` (a gap marker missing `topic`, `from` or `to`) is reported with
/// those fields absent.
#[inline]
pub fn scan(b: &[u8]) -> Msg<'_> {
    if let Some(m) = scan_tick_fast(b) {
        return m;
    }
    scan_rest(b)
}

/// Everything but a tick in tickcast's field order: kept out of line so the tick fast path
/// inlined into the receive loop stays small.
#[inline(never)]
fn scan_rest(b: &[u8]) -> Msg<'_> {
    if let Some(m) = scan_market_fast(b) {
        return m;
    }
    match scan_gap_fast(b) {
        Some(m) => m,
        None => scan_general(b),
    }
}

/// Fast path for `book`, `trade` and `bar` messages in tickcast's field order:
/// `{"type":"book","topic":"T","seq":N,"ts":N,...`, the same for `trade`, and
/// `{"type":"bar","topic":"T","seq":N,...` (bars have no `ts`). Anything else returns `None`.
#[inline]
fn scan_market_fast(b: &[u8]) -> Option<Msg<'_>> {
    let rest = b.strip_prefix(b"{\"type\":\"")?;
    let (kind, rest) = if let Some(r) = rest.strip_prefix(b"book\",\"topic\":\"") {
        (Kind::Book, r)
    } else if let Some(r) = rest.strip_prefix(b"trade\",\"topic\":\"") {
        (Kind::Trade, r)
    } else if let Some(r) = rest.strip_prefix(b"bar\",\"topic\":\"") {
        (Kind::Bar, r)
    } else {
        return None;
    };
    let q = memchr2(b'"', b'\\', rest)?;
    if rest[q] != b'"' {
        return None;
    }
    let topic = &rest[..q];
    let rest = rest.get(q + 1..)?.strip_prefix(b",\"seq\":")?;
    let (seq, n) = leading_uint(rest)?;
    let rest = rest.get(n..)?;
    let ts = if kind == Kind::Bar {
        None
    } else {
        let rest = rest.strip_prefix(b",\"ts\":")?;
        let (ts, n) = leading_uint(rest)?;
        if !matches!(rest.get(n), Some(b',' | b'}')) {
            return None;
        }
        Some(ts)
    };
    if kind == Kind::Bar && !matches!(rest.first(), Some(b',' | b'}')) {
        return None;
    }
    Some(Msg {
        topic,
        seq: Some(seq),
        ts,
        ..empty(kind)
    })
}

/// A message with only its kind known.
#[inline]
const fn empty(kind: Kind) -> Msg<'static> {
    Msg {
        kind,
        topic: b"",
        seq: None,
        ts: None,
        code: b"",
        from: None,
        to: None,
        reason: GapReason::Unknown,
    }
}

/// Fast path for ticks in tickcast's exact field order: a prefix compare, one memchr and two
/// integer parses. Anything else (other order, whitespace, escapes) returns `None` and goes
/// through the general scanner, so the result never depends on which path ran.
#[inline]
fn scan_tick_fast(b: &[u8]) -> Option<Msg<'_>> {
    let rest = b.strip_prefix(TICK_PREFIX)?;
    let q = memchr2(b'"', b'\\', rest)?;
    if rest[q] != b'"' {
        return None;
    }
    let topic = &rest[..q];
    let rest = rest.get(q + 1..)?.strip_prefix(b",\"seq\":")?;
    let (seq, n) = leading_uint(rest)?;
    let rest = rest.get(n..)?.strip_prefix(b",\"ts\":")?;
    let (ts, n) = leading_uint(rest)?;
    if !matches!(rest.get(n), Some(b',' | b'}')) {
        return None;
    }
    Some(Msg {
        topic,
        seq: Some(seq),
        ts: Some(ts),
        ..empty(Kind::Tick)
    })
}

/// Fast path for gap markers exactly as tickcast writes them:
/// `{"type":"gap","topic":"T","from":F,"to":T,"reason":"R"}`. Anything else returns `None`
/// (the general scanner then reads it), so the result never depends on which path ran.
#[inline]
fn scan_gap_fast(b: &[u8]) -> Option<Msg<'_>> {
    let rest = b.strip_prefix(GAP_PREFIX)?;
    let q = memchr2(b'"', b'\\', rest)?;
    if rest[q] != b'"' {
        return None;
    }
    let topic = &rest[..q];
    let rest = rest.get(q + 1..)?.strip_prefix(b",\"from\":")?;
    let (from, n) = leading_uint(rest)?;
    let rest = rest.get(n..)?.strip_prefix(b",\"to\":")?;
    let (to, n) = leading_uint(rest)?;
    let rest = rest.get(n..)?.strip_prefix(b",\"reason\":\"")?;
    let q = memchr2(b'"', b'\\', rest)?;
    if rest[q] != b'"' || rest.get(q + 1..) != Some(b"}") {
        return None;
    }
    Some(Msg {
        topic,
        from: Some(from),
        to: Some(to),
        reason: GapReason::parse(&rest[..q]),
        ..empty(Kind::Gap)
    })
}

/// A non-empty run of ASCII digits at the start of `b`: (value, length); `None` on overflow.
#[inline]
fn leading_uint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    while let Some(&c) = b.get(n) {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        n += 1;
    }
    (n > 0).then_some((v, n))
}

fn scan_general(b: &[u8]) -> Msg<'_> {
    let mut m = empty(Kind::Malformed);
    let mut typed = false;
    let mut p = Parser { b, i: 0 };
    p.ws();
    if !p.eat(b'{') {
        return m;
    }
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let Some(key) = p.string() else {
            return malformed(m);
        };
        p.ws();
        if !p.eat(b':') {
            return malformed(m);
        }
        p.ws();
        match key {
            b"type" => {
                let Some(v) = p.string() else {
                    return malformed(m);
                };
                typed = true;
                m.kind = match v {
                    b"tick" => Kind::Tick,
                    b"book" => Kind::Book,
                    b"trade" => Kind::Trade,
                    b"bar" => Kind::Bar,
                    b"subscribed" => Kind::Subscribed,
                    b"unsubscribed" => Kind::Unsubscribed,
                    b"pong" => Kind::Pong,
                    b"error" => Kind::Error,
                    b"gap" => Kind::Gap,
                    b"heartbeat" => Kind::Heartbeat,
                    _ => Kind::Other,
                };
            }
            b"topic" => match p.string() {
                Some(v) => m.topic = v,
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"code" => match p.string() {
                Some(v) => m.code = v,
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"seq" => match p.uint() {
                Some(v) => m.seq = Some(v),
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"ts" => match p.uint() {
                Some(v) => m.ts = Some(v),
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"from" => match p.uint() {
                Some(v) => m.from = Some(v),
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"to" => match p.uint() {
                Some(v) => m.to = Some(v),
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            b"reason" => match p.string() {
                Some(v) => m.reason = GapReason::parse(v),
                None => {
                    if !p.skip_value() {
                        return malformed(m);
                    }
                }
            },
            _ => {
                if !p.skip_value() {
                    return malformed(m);
                }
            }
        }
        // A tick needs nothing past these four; the remaining fields are prices. So do book and
        // trade messages (a book's levels are read apart, by `book::parse`); a bar has no `ts`.
        if m.kind.is_data()
            && !m.topic.is_empty()
            && m.seq.is_some()
            && (m.ts.is_some() || m.kind == Kind::Bar)
        {
            return m;
        }
        // A gap marker needs these four and its reason, which tickcast sends last.
        if m.kind == Kind::Gap
            && !m.topic.is_empty()
            && m.from.is_some()
            && m.to.is_some()
            && m.reason != GapReason::Unknown
        {
            return m;
        }
        // Other messages need only their type (and an error its code, which comes right after).
        if typed && !m.kind.is_data() && !matches!(m.kind, Kind::Error | Kind::Gap) {
            return m;
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            break;
        }
        return malformed(m);
    }
    if !typed {
        m.kind = Kind::Malformed;
    }
    m
}

fn malformed(mut m: Msg<'_>) -> Msg<'_> {
    m.kind = Kind::Malformed;
    m
}

/// A cursor over one JSON text (also used by `book::parse`).
pub(crate) struct Parser<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Parser<'a> {
    /// A cursor at the start of `b`.
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A string's raw bytes (escapes left as they are); `None` (position unchanged) if the
    /// value is not a string.
    #[inline]
    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        loop {
            let rest = self.b.get(j..)?;
            let k = memchr2(b'"', b'\\', rest)?;
            if rest[k] == b'"' {
                self.i = j + k + 1;
                return self.b.get(start..j + k);
            }
            j += k + 2; // skip the escaped character
        }
    }

    /// A non-negative integer; `None` (position unchanged) if the value is anything else.
    #[inline]
    pub(crate) fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        let mut j = start;
        while let Some(&c) = self.b.get(j) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            j += 1;
        }
        if j == start || matches!(self.b.get(j), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = j;
        Some(v)
    }

    /// Skips any JSON value (nested arrays/objects by bracket depth, bounded by the input).
    pub(crate) fn skip_value(&mut self) -> bool {
        match self.b.get(self.i) {
            Some(b'"') => self.string().is_some(),
            Some(b'[' | b'{') => {
                let mut depth = 0usize;
                while let Some(&c) = self.b.get(self.i) {
                    match c {
                        b'"' => {
                            if self.string().is_none() {
                                return false;
                            }
                            continue;
                        }
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return true;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                false
            }
            Some(_) => {
                // number, true, false, null
                let start = self.i;
                while let Some(&c) = self.b.get(self.i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                self.i > start
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_tickcast_tick() {
        let m = scan(
            br#"{"type":"tick","topic":"ticker.AAPL","seq":123,"ts":1763700000000000,"bid":189.12,"ask":189.14,"last":189.13,"size":200}"#,
        );
        assert_eq!(m.kind, Kind::Tick);
        assert_eq!(m.topic, b"ticker.AAPL");
        assert_eq!(m.seq, Some(123));
        assert_eq!(m.ts, Some(1763700000000000));
    }

    #[test]
    fn fast_and_general_paths_agree() {
        for s in [
            &br#"{"type":"tick","topic":"ticker.SYM0001","seq":7,"ts":17,"bid":1.5}"#[..],
            br#"{"type":"tick","topic":"ticker.SYM0001","seq":7,"ts":17}"#,
            br#"{"type":"tick","topic":"a"b","seq":7,"ts":17}"#,
            br#"{"type":"tick","topic":"t","seq":7.5,"ts":17}"#,
            br#"{"type":"tick","topic":"t","seq":99999999999999999999,"ts":17}"#,
            br#"{"type":"tick","topic":"t","seq":1,"ts":2x}"#,
            br#"{"type":"tick","topic":"t","ts":2,"seq":1}"#,
            br#"{"type":"tick","topic":"t""#,
        ] {
            let general = scan_general(s);
            if let Some(fast) = scan_tick_fast(s) {
                assert_eq!(fast, general, "{}", String::from_utf8_lossy(s));
            }
            assert_eq!(scan(s).kind, general.kind);
        }
        assert!(scan_tick_fast(br#"{"type":"tick","topic":"t","seq":1,"ts":2}"#).is_some());
    }

    #[test]
    fn scans_any_key_order_and_whitespace() {
        let m = scan(br#" { "bid" : 1.5e3, "x":[1,{"a":"]"}], "topic" : "ticker.SYM0007", "ts": 17, "type" : "tick", "seq" : 5 } "#);
        assert_eq!(m.kind, Kind::Tick);
        assert_eq!(m.topic, b"ticker.SYM0007");
        assert_eq!((m.seq, m.ts), (Some(5), Some(17)));
    }

    #[test]
    fn scans_acks_and_errors() {
        assert_eq!(
            scan(br#"{"type":"subscribed","topics":["ticker.SYM0001"],"id":1}"#).kind,
            Kind::Subscribed
        );
        assert_eq!(scan(br#"{"type":"pong","id":3}"#).kind, Kind::Pong);
        let e = scan(br#"{"type":"error","code":"bad_request","message":"x \"y\"","id":2}"#);
        assert_eq!(e.kind, Kind::Error);
        assert_eq!(e.code, b"bad_request");
        assert_eq!(
            scan(br#"{"type":"snapshot_end","topic":"t"}"#).kind,
            Kind::Other
        );
        let h = scan(br#"{"type":"heartbeat","topic":"ticker.X","seq":9,"ts":1,"feed_up":true}"#);
        assert_eq!(
            (h.kind, h.seq),
            (Kind::Heartbeat, None),
            "a heartbeat's seq is not read"
        );
    }

    #[test]
    fn scans_tickcast_gap_marker() {
        let m = scan(
            br#"{"type":"gap","topic":"ticker.AAPL","from":1235,"to":1240,"reason":"conflated"}"#,
        );
        assert_eq!(m.kind, Kind::Gap);
        assert_eq!(m.topic, b"ticker.AAPL");
        assert_eq!((m.from, m.to), (Some(1235), Some(1240)));
        assert_eq!(m.reason, GapReason::Conflated);
        assert_eq!((m.seq, m.ts), (None, None));
        for (r, want) in [
            ("dropped", GapReason::Dropped),
            ("upstream", GapReason::Upstream),
            ("later", GapReason::Unknown),
        ] {
            let f = format!(r#"{{"type":"gap","topic":"t","from":1,"to":1,"reason":"{r}"}}"#);
            assert!(scan_gap_fast(f.as_bytes()).is_some(), "{f}");
            assert_eq!(scan(f.as_bytes()).reason, want, "{f}");
        }
    }

    #[test]
    fn gap_fast_and_general_paths_agree() {
        for s in [
            &br#"{"type":"gap","topic":"ticker.SYM0001","from":7,"to":9,"reason":"dropped"}"#[..],
            br#"{"type":"gap","topic":"t","from":7,"to":9,"reason":"other"}"#,
            br#"{"type":"gap","topic":"a"b","from":7,"to":9,"reason":"dropped"}"#,
            br#"{"type":"gap","topic":"t","from":7.5,"to":9,"reason":"dropped"}"#,
            br#"{"type":"gap","topic":"t","from":99999999999999999999,"to":9,"reason":"dropped"}"#,
            br#"{"type":"gap","topic":"t","from":7,"to":9,"reason":"dropped","x":1}"#,
            br#"{"type":"gap","topic":"t","from":7,"to":9,"reason":"dro"pped"}"#,
            br#"{"type":"gap","topic":"t","to":9,"from":7,"reason":"dropped"}"#,
            br#"{"type":"gap","topic":"t","from":7,"to":9}"#,
            br#"{"type":"gap","topic":"t","from":7,"to":9,"reason":"dropped""#,
        ] {
            let general = scan_general(s);
            if let Some(fast) = scan_gap_fast(s) {
                assert_eq!(fast, general, "{}", String::from_utf8_lossy(s));
            }
            assert_eq!(scan(s), general, "{}", String::from_utf8_lossy(s));
        }
        assert!(
            scan_gap_fast(br#"{"type":"gap","topic":"t","from":1,"to":2,"reason":"x"}"#).is_some()
        );
        // A tick never takes the gap path and a marker never the tick path.
        assert!(scan_gap_fast(br#"{"type":"tick","topic":"t","seq":1,"ts":2}"#).is_none());
        assert!(
            scan_tick_fast(br#"{"type":"gap","topic":"t","from":1,"to":2,"reason":"x"}"#).is_none()
        );
    }

    #[test]
    fn scans_gap_markers_in_any_order_and_with_missing_fields() {
        let m = scan(br#" { "reason" : "upstream", "to": 12, "topic":"ticker.X", "from" : 10, "type":"gap" } "#);
        assert_eq!(m.kind, Kind::Gap);
        assert_eq!(m.topic, b"ticker.X");
        assert_eq!(
            (m.from, m.to, m.reason),
            (Some(10), Some(12), GapReason::Upstream)
        );
        // Missing `to`: still a gap marker, with the field absent (the accounting rejects it).
        let m = scan(br#"{"type":"gap","topic":"t","from":3,"reason":"dropped"}"#);
        assert_eq!((m.kind, m.from, m.to), (Kind::Gap, Some(3), None));
        let m = scan(br#"{"type":"gap","topic":"t","from":-3,"to":4,"reason":"dropped"}"#);
        assert_eq!((m.kind, m.from), (Kind::Gap, None));
        // No reason at all: a marker of unknown reason.
        let m = scan(br#"{"type":"gap","topic":"t","from":3,"to":4}"#);
        assert_eq!(
            (m.kind, m.reason, m.to),
            (Kind::Gap, GapReason::Unknown, Some(4))
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        for s in [
            &b""[..],
            b"{",
            b"[1,2]",
            b"{\"type\"",
            b"{\"type\":",
            b"{\"type\":\"tick\",\"seq\":-1",
            b"{\"seq\":99999999999999999999999}",
            b"{\"a\":\"\\",
            b"{\"topic\":1,\"type\":\"tick\"}",
            b"{\"x\":]}",
        ] {
            let _ = scan(s);
        }
        assert_eq!(scan(b"{}").kind, Kind::Malformed);
        assert_eq!(scan(b"not json").kind, Kind::Malformed);
        let m = scan(br#"{"type":"tick","topic":"t","seq":1.5,"ts":2}"#);
        assert_eq!((m.kind, m.seq), (Kind::Tick, None));
    }

    #[test]
    fn scans_book_trade_and_bar_messages() {
        let book = br#"{"type":"book","topic":"book.AAPL","seq":41,"ts":1763700000000000,"snapshot":true,"depth":25,"bids":[["189.12","300"]],"asks":[["189.14","100"]],"checksum":12}"#;
        let trade = br#"{"type":"trade","topic":"trade.AAPL","seq":7,"ts":17,"price":"189.13","size":"200","side":"buy","trade_id":"t-1"}"#;
        let bar = br#"{"type":"bar","topic":"bar.1s.AAPL","seq":3,"start":1763699960000000,"open":"189.10","trades":9,"closed":false}"#;
        for (b, kind, topic, seq, ts) in [
            (
                &book[..],
                Kind::Book,
                &b"book.AAPL"[..],
                41,
                Some(1763700000000000),
            ),
            (trade, Kind::Trade, b"trade.AAPL", 7, Some(17)),
            (bar, Kind::Bar, b"bar.1s.AAPL", 3, None),
        ] {
            let fast = scan_market_fast(b).expect("fast path");
            assert_eq!(
                (fast.kind, fast.topic, fast.seq, fast.ts),
                (kind, topic, Some(seq), ts)
            );
            assert_eq!(scan_general(b), fast, "{}", String::from_utf8_lossy(b));
            assert_eq!(scan(b), fast);
            assert!(kind.is_data());
        }
        // Other field orders and spacing go the general way, with the same result.
        let m = scan(br#"{"seq":5,"type":"bar","topic":"bar.1m.X","closed":true}"#);
        assert_eq!((m.kind, m.seq, m.ts), (Kind::Bar, Some(5), None));
        let m = scan(br#"{ "type" : "trade", "ts":3, "topic":"trade.X", "seq":9 }"#);
        assert_eq!((m.kind, m.seq, m.ts), (Kind::Trade, Some(9), Some(3)));
        assert!(scan_market_fast(br#"{"type":"book","topic":"t","seq":1,"ts":2x}"#).is_none());
        assert!(scan_market_fast(br#"{"type":"bars","topic":"t","seq":1}"#).is_none());
        assert_eq!(
            scan(br#"{"type":"gap","topic":"book.X","from":3,"to":9,"reason":"resync"}"#).reason,
            GapReason::Resync
        );
        assert!(!Kind::Gap.is_data() && !Kind::Heartbeat.is_data());
    }
}
