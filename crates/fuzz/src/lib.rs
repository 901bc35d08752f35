//! The checks behind tickcast's fuzz targets, one function per target. Each takes arbitrary bytes,
//! drives one parser or codec with them and panics when an invariant breaks. The fuzz targets in
//! `fuzz_targets/` call them under libFuzzer (nightly); `crates/tickcast/tests/corpus.rs` compiles
//! this same file on stable and runs it over every committed seed in `corpus/`.

use tickcast_core::frame::{OpCode, TickEncoder};
use tickcast_core::market::encode::{encode_book_delta, encode_book_snapshot, encode_trade};
use tickcast_core::market::{Book, Decimal, Level, Trade};
use tickcast_core::protocol::{Recovery, ServerReply};
use tickcast_core::wire::{FrameTracker, WireViolation as Violation};
use tickcast_core::{
    ClientRequest, Frame, NotRecovered, Price, Seq, Size, Tick, Topic, TopicPattern, TsMicros,
};
use tickcast_ingest::line::{Framed, LineFramer};
use tickcast_ingest::parse::{for_each_line, parse_line_serde_json, Line, TickLine, TickParser};
use tickcast_ingest::RejectReason;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "server output is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// `ClientRequest::parse` on any bytes: never panics, a request holds only valid, distinct topics,
/// and every reply or error it leads to is well-formed JSON that echoes the id.
pub fn client_request(data: &[u8]) {
    let mut buf = data.to_vec();
    match ClientRequest::parse(&mut buf) {
        Ok(req) => {
            let id = req.id().cloned();
            if let Some(id) = &id {
                let v = json(id.as_json().as_bytes());
                assert!(v.is_string() || v.is_i64() || v.is_u64(), "id {v}");
            }
            let reply = match &req {
                ClientRequest::Subscribe { topics, .. }
                | ClientRequest::Unsubscribe { topics, .. } => {
                    let patterns = match &req {
                        ClientRequest::Subscribe { options, .. } => options.patterns.as_slice(),
                        ClientRequest::Unsubscribe { patterns, .. } => patterns.as_slice(),
                        _ => &[],
                    };
                    assert!(!topics.is_empty() || !patterns.is_empty());
                    for (i, p) in patterns.iter().enumerate() {
                        assert!(TopicPattern::new(p.as_str()).is_ok(), "{p:?}");
                        assert!(!patterns[..i].contains(p), "duplicate {p:?}");
                    }
                    for (i, t) in topics.iter().enumerate() {
                        assert!(Topic::new(t.as_str()).is_ok(), "{t:?}");
                        assert!(!topics[..i].contains(t), "duplicate {t:?}");
                    }
                    // The ack of a v2 subscribe echoes each `since` topic's epoch and an outcome:
                    // whatever the client sent, it must encode as valid JSON.
                    let since = match &req {
                        ClientRequest::Subscribe { options, .. } => options.since.as_slice(),
                        _ => &[],
                    };
                    let epochs: Vec<_> = since
                        .iter()
                        .map(|s| (s.topic.clone(), s.epoch.clone()))
                        .collect();
                    let recovery: Vec<_> = since
                        .iter()
                        .enumerate()
                        .map(|(i, s)| Recovery {
                            topic: s.topic.clone(),
                            outcome: if i % 2 == 0 {
                                Ok(())
                            } else {
                                Err(NotRecovered::TooOld)
                            },
                        })
                        .collect();
                    let r = if matches!(req, ClientRequest::Subscribe { .. }) {
                        ServerReply::Subscribed {
                            topics,
                            patterns,
                            pending: &[],
                            epochs: &epochs,
                            recovery: &recovery,
                            id: id.as_ref(),
                        }
                    } else {
                        ServerReply::Unsubscribed {
                            topics,
                            patterns,
                            id: id.as_ref(),
                        }
                    };
                    let v = json(r.to_frame().payload());
                    let names: Vec<&str> = topics.iter().map(|t| t.as_str()).collect();
                    assert_eq!(v["topics"], serde_json::json!(names));
                    for s in since {
                        assert!(
                            topics.contains(&s.topic)
                                || patterns.iter().any(|p| p.matches(&s.topic)),
                            "since names an unlisted topic"
                        );
                        assert_eq!(v["epochs"][s.topic.as_str()], s.epoch.as_str());
                    }
                    v
                }
                ClientRequest::Ping { .. } => {
                    let ts = TsMicros(1);
                    let v = json(
                        ServerReply::Pong {
                            ts,
                            id: id.as_ref(),
                        }
                        .to_frame()
                        .payload(),
                    );
                    assert_eq!(v["type"], "pong");
                    assert_eq!(v["ts"], 1);
                    v
                }
            };
            if let Some(id) = &id {
                assert_eq!(reply["id"], json(id.as_json().as_bytes()));
            }
        }
        Err(e) => {
            let code = e.code();
            assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            let v = json(e.to_frame().payload());
            assert_eq!(v["type"], "error");
            assert_eq!(v["code"], code);
            assert!(v["message"].is_string());
            match &e.id {
                Some(id) => assert_eq!(v["id"], json(id.as_json().as_bytes())),
                None => assert!(v.get("id").is_none()),
            }
        }
    }
}

/// What the line path yields for one line: its number and its bytes, or `None` for too long.
type LineEvent = (u64, Option<Vec<u8>>);

/// The feed line path on any byte stream, cut into reads of any size: the stateful [`LineFramer`]
/// plus [`for_each_line`] yield exactly the lines a plain split yields (numbered, CRLF-trimmed,
/// blank ones skipped, over-long ones reported); every line goes through [`TickParser`], whose
/// ticks are valid, agree with the serde_json route, and survive encode → parse unchanged.
///
/// `data[0]` picks the line cap, `data[1]` the read size; the rest is the stream.
pub fn tick_line(data: &[u8]) {
    let [cap, read, stream @ ..] = data else {
        return;
    };
    let max_line = 8 + *cap as usize * 2;
    let read = 1 + (*read as usize % 97);

    let mut framer = LineFramer::new(max_line);
    let mut parser = TickParser::new(64);
    let mut seen: Vec<LineEvent> = Vec::new();
    let mut next = 1;
    let mut handle = |framed: Framed, seen: &mut Vec<LineEvent>| match framed {
        Framed::TooLong { line } => {
            assert_eq!(line, next, "line numbers run on");
            next = line + 1;
            seen.push((line, None));
        }
        Framed::Lines {
            first_line,
            mut data,
        } => {
            assert_eq!(first_line, next, "line numbers run on");
            next = first_line + data.iter().filter(|b| **b == b'\n').count() as u64;
            if !data.ends_with(b"\n") {
                next += 1;
            }
            for_each_line(&mut data, first_line, max_line, |n, line| match line {
                Err(e) => {
                    assert_eq!(e.reason(), RejectReason::TooLong);
                    seen.push((n, None));
                }
                Ok(line) => {
                    seen.push((n, Some(line.to_vec())));
                    check_line(&mut parser, line);
                }
            });
        }
    };
    for chunk in stream.chunks(read) {
        framer.read_buf(chunk.len()).extend_from_slice(chunk);
        while let Some(f) = framer.next_framed() {
            handle(f, &mut seen);
        }
    }
    if let Some(f) = framer.finish() {
        handle(f, &mut seen);
    }
    assert_eq!(
        seen,
        reference_lines(stream, max_line),
        "max_line {max_line}, read {read}"
    );
}

/// What splitting the whole stream at once gives: a line longer than `max_line` (not counting a
/// trailing `\r`) is reported, blank lines are skipped.
fn reference_lines(stream: &[u8], max_line: usize) -> Vec<LineEvent> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    if parts.last().is_some_and(|l| l.is_empty()) {
        parts.pop();
    }
    for (i, raw) in parts.into_iter().enumerate() {
        let n = i as u64 + 1;
        // The framer cannot look at a line it is discarding, so an over-long blank line counts too.
        if raw.len() > max_line + 1 {
            out.push((n, None));
            continue;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        out.push((n, (line.len() <= max_line).then(|| line.to_vec())));
    }
    out
}

fn owned(t: TickLine<'_>) -> (String, [f64; 4], Option<u64>, Option<u64>) {
    let q = t.quote;
    (
        t.topic.into_owned(),
        [q.bid.0, q.ask.0, q.last.0, q.size.0],
        t.ts,
        t.seq,
    )
}

/// One feed line through the tape parser, cross-checked with serde_json and an encode round trip.
fn check_line(parser: &mut TickParser, line: &[u8]) {
    let mut buf = line.to_vec();
    let tape = parser.parse(&mut buf).map(owned);
    let serde = parse_line_serde_json(line).map(owned);
    if let (Ok(a), Ok(b)) = (&tape, &serde) {
        assert_eq!(a.0, b.0, "topic");
        assert_eq!((a.2, a.3), (b.2, b.3), "ts, seq");
        for (x, y) in a.1.iter().zip(&b.1) {
            // serde_json's default float parsing is best-effort in the last bit.
            assert!((x - y).abs() <= x.abs() * 1e-15, "{x} vs {y}");
        }
    }
    let Ok((topic, [bid, ask, last, size], ts, seq)) = tape else {
        return;
    };
    let topic = Topic::new(&topic).expect("the parser accepts only valid topics");
    assert!([bid, ask, last, size].iter().all(|v| v.is_finite()) && size >= 0.0);
    let tick = Tick {
        topic,
        seq: Seq(seq.unwrap_or(1)),
        ts: TsMicros(ts.unwrap_or(0)),
        bid: Price(bid),
        ask: Price(ask),
        last: Price(last),
        size: Size(size),
    };
    let frame = TickEncoder::new().encode(&tick);
    let v = json(frame.payload());
    assert_eq!(v["type"], "tick");
    assert_eq!(v["topic"], tick.topic.as_str());
    assert_eq!(v["seq"], tick.seq.0);
    assert_eq!(v["ts"], tick.ts.0);
    // The encoded tick is itself a valid feed line carrying exactly the same values.
    let mut again = frame.payload().to_vec();
    let back = owned(parser.parse(&mut again).expect("an encoded tick parses"));
    assert_eq!(back.0, tick.topic.as_str());
    assert_eq!(back.1, [bid, ask, last, size], "prices round-trip exactly");
    assert_eq!((back.2, back.3), (Some(tick.ts.0), Some(tick.seq.0)));
}

/// `Frame::new` for any opcode and payload (up to past the 64 KiB header switch) produces the minimal
/// RFC 6455 header and gives the payload back; `close_raw` stays within the control-frame limit
/// and cuts its reason on a character boundary.
///
/// `data[0]`: bits 0-1 the opcode, bit 7 stretches the payload past 64 KiB.
pub fn frame_codec(data: &[u8]) {
    let [sel, rest @ ..] = data else {
        return;
    };
    let op = [OpCode::Text, OpCode::Close, OpCode::Ping, OpCode::Pong][*sel as usize % 4];
    let mut payload = rest.to_vec();
    if sel & 0x80 != 0 && !payload.is_empty() {
        while payload.len() <= u16::MAX as usize {
            payload.extend_from_within(..payload.len().min(8192));
        }
    }
    let f = Frame::new(op, &payload);
    let b = f.as_slice();
    assert_eq!(b[0], 0x80 | op as u8, "FIN set, no RSV bits");
    assert_eq!(b[1] & 0x80, 0, "server frames are unmasked");
    let (hlen, len) = match b[1] {
        126 => (4, u16::from_be_bytes([b[2], b[3]]) as u64),
        127 => (10, u64::from_be_bytes(b[2..10].try_into().unwrap())),
        n => (2, n as u64),
    };
    let minimal = match hlen {
        2 => len < 126,
        4 => (126..=65535).contains(&len),
        _ => len > 65535 && len >> 63 == 0,
    };
    assert!(minimal, "length {len} in a {hlen}-byte header");
    assert_eq!(len, payload.len() as u64);
    assert_eq!(f.len(), hlen + payload.len());
    assert_eq!(f.payload(), &payload[..]);
    assert_eq!(f.is_close(), op == OpCode::Close);
    assert_eq!(f.clone(), f);
    assert_eq!(f.bytes().len(), f.len());

    if let [c0, c1, reason @ ..] = rest {
        let code = u16::from_be_bytes([*c0, *c1]);
        let reason = String::from_utf8_lossy(reason);
        let c = Frame::close_raw(code, &reason);
        assert!(c.is_close());
        let p = c.payload();
        assert!(
            (2..=125).contains(&p.len()),
            "control payload of {} bytes",
            p.len()
        );
        assert_eq!(p[..2], code.to_be_bytes());
        let cut = std::str::from_utf8(&p[2..]).expect("reason cut on a char boundary");
        assert!(reason.starts_with(cut));
        assert!(
            cut.len() == reason.len() || cut.len() + 4 > 123,
            "cut no shorter than needed"
        );
    }
}

/// Where a reference decoder of the whole client stream ends up.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The first violation, found once the header ending at `at` was complete.
    Violation(Violation, usize),
    /// The stream ends; `at_rest` when on a frame boundary outside a fragmented message.
    End { at_rest: bool },
}

/// A straightforward decoder of client frame headers, written apart from the tracker: frame end
/// offsets and the outcome.
fn reference_frames(stream: &[u8], max: u64) -> (Vec<usize>, Outcome) {
    let mut ends = Vec::new();
    let (mut i, mut msg, mut in_msg) = (0usize, 0u64, false);
    loop {
        let rest = &stream[i..];
        if rest.is_empty() {
            return (ends, Outcome::End { at_rest: !in_msg });
        }
        if rest.len() < 2 {
            return (ends, Outcome::End { at_rest: false });
        }
        let masked = rest[1] & 0x80 != 0;
        let ext = match rest[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let hlen = 2 + ext + if masked { 4 } else { 0 };
        if rest.len() < hlen {
            return (ends, Outcome::End { at_rest: false });
        }
        let payload = match ext {
            0 => (rest[1] & 0x7f) as u64,
            2 => u16::from_be_bytes([rest[2], rest[3]]) as u64,
            _ => u64::from_be_bytes(rest[2..10].try_into().unwrap()),
        };
        let header_end = i + hlen;
        if !masked {
            return (ends, Outcome::Violation(Violation::Unmasked, header_end));
        }
        let (fin, opcode) = (rest[0] & 0x80 != 0, rest[0] & 0x0f);
        match opcode {
            1 | 2 => (msg, in_msg) = (payload, !fin),
            0 => (msg, in_msg) = (msg.saturating_add(payload), !fin),
            _ => {}
        }
        if opcode < 8 && msg > max {
            return (ends, Outcome::Violation(Violation::TooBig(msg), header_end));
        }
        let end = (header_end as u64).saturating_add(payload);
        if end > stream.len() as u64 {
            return (ends, Outcome::End { at_rest: false });
        }
        i = end as usize;
        ends.push(i);
    }
}

/// The inbound frame tracker on any client byte stream, staged in reads of any size as the session
/// does: it hands over at most one frame per delivery (never crossing a frame end), finds the same
/// violation at the same place as a reference decoder, and knows when the stream is at rest.
///
/// `data[0]` picks the message limit, `data[1]` the read size; the rest is the stream.
pub fn inbound_frames(data: &[u8]) {
    let [max, read, stream @ ..] = data else {
        return;
    };
    let max = *max as u64 * 16;
    let read = 1 + (*read as usize % 61);
    let (ends, expected) = reference_frames(stream, max);

    let mut t = FrameTracker::new(max as usize);
    let mut pos = 0;
    let mut outcome = None;
    'outer: while pos < stream.len() {
        let staged_end = (pos + read).min(stream.len());
        while pos < staged_end {
            let staged = &stream[pos..staged_end];
            let n = t.deliverable(staged);
            assert!(
                (1..=staged.len()).contains(&n),
                "deliverable {n} of {}",
                staged.len()
            );
            let end = pos + n;
            assert!(
                !ends.iter().any(|e| *e > pos && *e < end),
                "delivery {pos}..{end} crosses a frame end"
            );
            if let Err(v) = t.feed(&stream[pos..end]) {
                // A frame whose header breaks the rules may be delivered up to its claimed end:
                // the violation is found in this delivery and nothing of it reaches the parser.
                outcome = Some((v, pos, end));
                break 'outer;
            }
            assert!(
                end == staged_end || ends.contains(&end),
                "delivery stops at {end}"
            );
            pos = end;
        }
    }
    match (expected, outcome) {
        (Outcome::Violation(v, at), Some((got, from, to))) => {
            assert_eq!(got, v);
            assert!(
                from < at && at <= to,
                "found in {from}..{to}, header ends at {at}"
            );
        }
        (Outcome::End { at_rest }, None) => assert_eq!(t.at_rest(), at_rest),
        (e, o) => panic!("expected {e:?}, tracker gave {o:?}"),
    }
    // Fed in one piece, the tracker reaches the same verdict.
    let mut whole = FrameTracker::new(max as usize);
    match (whole.feed(stream), reference_frames(stream, max).1) {
        (Err(v), Outcome::Violation(w, _)) => assert_eq!(v, w),
        (Ok(()), Outcome::End { at_rest }) => assert_eq!(whole.at_rest(), at_rest),
        (r, e) => panic!("whole stream: {r:?} vs {e:?}"),
    }
}

/// One book or trade feed line (`{"type":"book",...}`, `{"type":"trade",...}`) on any bytes: the
/// parser never panics; what it accepts has valid topics of the right channel, exact decimals and
/// non-negative sizes; a book update applied to a book leaves it uncrossed or is refused with the
/// book unchanged; the messages tickcast encodes from it are JSON, carry the book's checksum, and
/// parse back as the same update (books and trades round-trip exactly).
pub fn market_line(data: &[u8]) {
    let mut parser = TickParser::new(64);
    let mut buf = data.to_vec();
    let Ok(line) = parser.parse_line(&mut buf) else {
        return;
    };
    match line {
        Line::Quote(_) => {}
        Line::Book(b) => {
            let topic = Topic::new(&b.topic).expect("a valid topic");
            assert_eq!(topic.channel(), "book");
            assert!(b.bids.iter().chain(&b.asks).all(|l| !l.1.is_negative()));
            let mut book = Book::new(25);
            let before = book.clone();
            let applied = if b.snapshot {
                book.apply_snapshot(&b.bids, &b.asks)
            } else {
                book.apply_delta(&b.bids, &b.asks)
            };
            if applied.is_err() {
                assert_eq!(book, before, "a refused update changes nothing");
                return;
            }
            assert!(!book.is_crossed());
            let mut out = Vec::new();
            encode_book_delta(
                &mut out,
                &topic,
                Seq(1),
                TsMicros(1),
                &b.bids,
                &b.asks,
                book.checksum(),
            );
            let v = json(&out);
            assert_eq!(v["checksum"], u64::from(book.checksum()));
            // A delta with no level is refused as a line (it would say nothing); an empty
            // snapshot (an empty book) is not.
            if !(b.bids.is_empty() && b.asks.is_empty()) {
                let Ok(Line::Book(back)) = parser.parse_line(&mut out) else {
                    panic!("an encoded delta parses as a book line");
                };
                assert_eq!(
                    (back.bids, back.asks),
                    (b.bids, b.asks),
                    "levels round-trip exactly"
                );
            }
            let mut snap = Vec::new();
            encode_book_snapshot(&mut snap, &topic, Seq(1), TsMicros(1), &book);
            let v = json(&snap);
            assert_eq!(v["snapshot"], true);
            assert_eq!(v["depth"], 25);
        }
        Line::Trade(t) => {
            let topic = Topic::new(&t.topic).expect("a valid topic");
            assert_eq!(topic.channel(), "trade");
            assert!(!t.size.is_negative() && !t.size.is_zero());
            let trade = Trade {
                price: t.price,
                size: t.size,
                side: t.side,
                trade_id: t.trade_id.as_deref().unwrap_or("1").to_string(),
                ts: TsMicros(t.ts.unwrap_or(0)),
            };
            let mut out = Vec::new();
            encode_trade(&mut out, &topic, Seq(1), &trade);
            json(&out);
            let Ok(Line::Trade(back)) = parser.parse_line(&mut out) else {
                panic!("an encoded trade parses as a trade line");
            };
            assert_eq!(
                (back.price, back.size, back.side),
                (t.price, t.size, t.side)
            );
        }
    }
}

/// A run of book snapshots and deltas decoded from any bytes, applied to the book and to a plain
/// reference (a map per side, trimmed to the depth): they hold the same levels after every update,
/// a refused update (crossed, negative) leaves the book unchanged, the book is never crossed, and
/// two books with the same levels have the same checksum.
pub fn book_deltas(data: &[u8]) {
    use std::collections::BTreeMap;
    let Some((&depth, ops)) = data.split_first() else {
        return;
    };
    let depth = 1 + usize::from(depth % 12);
    let mut book = Book::new(depth);
    let (mut bids, mut asks): (BTreeMap<i128, i128>, BTreeMap<i128, i128>) = Default::default();
    // Each op: [kind, n, then n × (side, price, size)]; prices 0..=255 cents, sizes -1..=254.
    let mut rest = ops;
    while let [kind, n, tail @ ..] = rest {
        let n = usize::from(*n % 8);
        let take = (n * 3).min(tail.len());
        let (levels, next) = tail.split_at(take);
        rest = next;
        let (mut b, mut a) = (Vec::new(), Vec::new());
        for l in levels.chunks_exact(3) {
            let level = (
                Decimal::new(i128::from(l[1]), 2),
                Decimal::new(i128::from(l[2]) - 1, 0),
            );
            if l[0] % 2 == 0 {
                b.push(level)
            } else {
                a.push(level)
            }
        }
        let snapshot = kind % 4 == 0;
        let before = book.clone();
        let applied = if snapshot {
            book.apply_snapshot(&b, &a)
        } else {
            book.apply_delta(&b, &a)
        };
        if applied.is_err() {
            assert_eq!(book, before, "a refused update changes nothing");
            continue;
        }
        if snapshot {
            bids.clear();
            asks.clear();
        }
        for (side, levels) in [(&mut bids, &b), (&mut asks, &a)] {
            for (p, s) in levels {
                if s.is_zero() {
                    side.remove(&p.mantissa());
                } else {
                    side.insert(p.mantissa(), s.mantissa());
                }
            }
        }
        while bids.len() > depth {
            bids.pop_first();
        }
        while asks.len() > depth {
            asks.pop_last();
        }
        assert!(!book.is_crossed());
        let got_b: Vec<_> = book
            .bids()
            .map(|(p, s)| (p.mantissa(), s.mantissa()))
            .collect();
        let got_a: Vec<_> = book
            .asks()
            .map(|(p, s)| (p.mantissa(), s.mantissa()))
            .collect();
        let want_b: Vec<_> = bids.iter().rev().map(|(p, s)| (*p, *s)).collect();
        let want_a: Vec<_> = asks.iter().map(|(p, s)| (*p, *s)).collect();
        assert_eq!((got_b, got_a), (want_b, want_a), "depth {depth}");
        let mut same = Book::new(depth);
        let (sb, sa): (Vec<Level>, Vec<Level>) = (book.bids().collect(), book.asks().collect());
        if same.apply_snapshot(&sb, &sa).is_ok() {
            assert_eq!(same.checksum(), book.checksum());
        }
    }
}
