//! The NDJSON tick line: `{"topic":"ticker.AAPL","bid":189.12,"ask":189.14,"last":189.13,"size":200}`
//! with optional `ts` (unix µs, used by replay for pacing) and upstream `seq`, parsed in place with
//! simd-json into a validated [`TickLine`].
//!
//! Parsing is two steps so each failure maps to one reason: serde only reads the shape ([`RawTick`],
//! every field a loosely typed [`Scalar`], so syntax errors are the only serde errors), then
//! [`TickLine::try_from`] checks presence, numbers and the topic. Numbers may also arrive as strings
//! (`"189.12"`), as exchanges send them to keep their precision. Unknown fields are ignored.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use simd_json::prelude::*;
use simd_json::tape::Tape;
use simd_json::Buffers;
use tickcast_core::{Price, Size, Topic};

use crate::market_line::{book_from_tape, trade_from_tape, BookLine, TradeLine};
use crate::publisher::Quote;
use crate::reject::Reject;

impl Line<'_> {
    /// The line's topic name.
    pub fn topic(&self) -> &str {
        match self {
            Line::Quote(q) => &q.topic,
            Line::Book(b) => &b.topic,
            Line::Trade(t) => &t.topic,
        }
    }
}

/// One parsed input line: a quote (no `type`, or `"type":"ticker"`), a book update or a trade.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// A top-of-book quote for a `ticker`-style topic.
    Quote(TickLine<'a>),
    /// A `book.*` snapshot or delta.
    Book(BookLine<'a>),
    /// A `trade.*` print.
    Trade(TradeLine<'a>),
}

/// A JSON scalar as a tick field may hold it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A number with a fraction or exponent.
    F64(f64),
    /// A string (borrowed from the input when it had no escapes, or always with simd-json).
    Str(Cow<'a, str>),
    /// `null`, a bool, an array or an object: never a valid tick field.
    Other,
}

impl Scalar<'_> {
    /// The value as a finite f64 (numbers or numeric strings).
    fn f64(&self) -> Option<f64> {
        let v = match self {
            Scalar::U64(u) => *u as f64,
            Scalar::I64(i) => *i as f64,
            Scalar::F64(f) => *f,
            Scalar::Str(s) => s.trim().parse::<f64>().ok()?,
            Scalar::Other => return None,
        };
        v.is_finite().then_some(v)
    }

    /// The value as a non-negative integer (integers or integer strings).
    fn u64(&self) -> Option<u64> {
        match self {
            Scalar::U64(u) => Some(*u),
            Scalar::Str(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(std::marker::PhantomData))
    }
}

struct ScalarVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Scalar::U64(v as u64)
        } else {
            Scalar::I64(v)
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// The wire shape of a tick line, fields unchecked. Public so benchmarks and other parsers
/// (serde_json) can produce it and share the validation.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RawTick<'a> {
    /// `<channel>.<symbol>`.
    #[serde(borrow, default)]
    pub topic: Option<Scalar<'a>>,
    /// Best bid.
    #[serde(borrow, default)]
    pub bid: Option<Scalar<'a>>,
    /// Best ask.
    #[serde(borrow, default)]
    pub ask: Option<Scalar<'a>>,
    /// Last trade price.
    #[serde(borrow, default)]
    pub last: Option<Scalar<'a>>,
    /// Last trade size.
    #[serde(borrow, default)]
    pub size: Option<Scalar<'a>>,
    /// Source time, unix microseconds (optional).
    #[serde(borrow, default)]
    pub ts: Option<Scalar<'a>>,
    /// Upstream sequence number (optional).
    #[serde(borrow, default)]
    pub seq: Option<Scalar<'a>>,
}

/// A validated tick line: a topic name that passed [`Topic`] validation, a quote and the optional
/// upstream `ts` and `seq`. The ingester still assigns tickcast's own seq and ts.
#[derive(Debug, Clone, PartialEq)]
pub struct TickLine<'a> {
    /// Topic name (valid).
    pub topic: Cow<'a, str>,
    /// Prices and size.
    pub quote: Quote,
    /// Source timestamp in unix µs, if given.
    pub ts: Option<u64>,
    /// Upstream sequence number, if given.
    pub seq: Option<u64>,
}

fn number(v: Option<Scalar<'_>>, field: &'static str) -> Result<f64, Reject> {
    v.ok_or(Reject::MissingField(field))?
        .f64()
        .ok_or(Reject::BadNumber(field))
}

fn optional_u64(v: Option<Scalar<'_>>, field: &'static str) -> Result<Option<u64>, Reject> {
    v.map(|s| s.u64().ok_or(Reject::BadNumber(field)))
        .transpose()
}

impl<'a> TryFrom<RawTick<'a>> for TickLine<'a> {
    type Error = Reject;

    fn try_from(raw: RawTick<'a>) -> Result<Self, Reject> {
        let topic = match raw.topic.ok_or(Reject::MissingField("topic"))? {
            Scalar::Str(s) => s,
            _ => return Err(Reject::BadTopic("\"topic\" must be a string".into())),
        };
        validate_topic(&topic)?;
        let size = number(raw.size, "size")?;
        if size < 0.0 {
            return Err(Reject::BadNumber("size"));
        }
        Ok(TickLine {
            quote: Quote {
                bid: Price(number(raw.bid, "bid")?),
                ask: Price(number(raw.ask, "ask")?),
                last: Price(number(raw.last, "last")?),
                size: Size(size),
            },
            topic,
            ts: optional_u64(raw.ts, "ts")?,
            seq: optional_u64(raw.seq, "seq")?,
        })
    }
}

/// Checks a topic name without allocating (the rules of [`Topic::new`]).
pub(crate) fn validate_topic(name: &str) -> Result<(), Reject> {
    let valid_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
    let ok = !name.is_empty()
        && name.len() <= tickcast_core::topic::MAX_TOPIC_LEN
        && name.bytes().all(valid_char)
        && matches!(name.split_once('.'), Some((c, s)) if !c.is_empty() && !s.is_empty());
    if ok {
        return Ok(());
    }
    // Slow path only for the error text.
    match Topic::new(name) {
        Err(e) => Err(Reject::BadTopic(format!(
            "{:?}: {e}",
            name.chars().take(80).collect::<String>()
        ))),
        Ok(_) => Ok(()),
    }
}

/// Rejects anything but an object up front: serde would accept a positional array for a struct.
fn expect_object(line: &[u8]) -> Result<(), Reject> {
    let found = match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => return Ok(()),
        Some(b'[') => ", found an array",
        Some(b'"') => ", found a string",
        Some(b'-' | b'0'..=b'9') => ", found a number",
        _ => "",
    };
    Err(Reject::BadJson(format!(
        "a tick must be a JSON object{found}"
    )))
}

/// Parses lines in place with simd-json, reusing its buffers and tape, so a line costs no
/// allocation: the tape is walked directly instead of going through serde.
pub struct TickParser {
    buffers: Buffers,
    /// Kept empty between calls; only its allocation is reused.
    tape: Tape<'static>,
}

impl Default for TickParser {
    fn default() -> Self {
        Self::new(512)
    }
}

impl TickParser {
    /// A parser with buffers sized for lines of about `line_len` bytes (they grow if needed).
    pub fn new(line_len: usize) -> Self {
        Self {
            buffers: Buffers::new(line_len),
            tape: Tape(Vec::new()),
        }
    }

    /// Parses one quote line in place (`line` is scratch afterwards); book and trade lines are
    /// refused (see [`parse_line`](Self::parse_line)).
    pub fn parse<'a>(&mut self, line: &'a mut [u8]) -> Result<TickLine<'a>, Reject> {
        match self.parse_line(line)? {
            Line::Quote(q) => Ok(q),
            _ => Err(Reject::Unsupported(
                "book and trade lines are not accepted here",
            )),
        }
    }

    /// Parses one line of any type in place (`line` is scratch afterwards).
    pub fn parse_line<'a>(&mut self, line: &'a mut [u8]) -> Result<Line<'a>, Reject> {
        let mut tape: Tape<'a> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let result = match simd_json::fill_tape(line, &mut self.buffers, &mut tape) {
            Ok(()) => line_from_tape(&tape),
            Err(e) => Err(Reject::json(&e)),
        };
        self.tape = tape.reset();
        result
    }
}

/// Reads a line's object off the tape, by its `type`.
fn line_from_tape<'a>(tape: &Tape<'a>) -> Result<Line<'a>, Reject> {
    let root = tape.as_value();
    let obj = root.as_object().ok_or_else(|| {
        Reject::BadJson(format!(
            "a tick must be a JSON object, found {}",
            crate::reject::type_name(root.value_type())
        ))
    })?;
    let kind = obj.get("type");
    match kind.as_ref().map(|t| t.as_str()) {
        // "tick" is how the NATS transport names a quote.
        None | Some(Some("ticker" | "tick")) => raw_from_tape(&obj)
            .and_then(TickLine::try_from)
            .map(Line::Quote),
        Some(Some("book")) => book_from_tape(&obj).map(Line::Book),
        Some(Some("trade")) => trade_from_tape(&obj).map(Line::Trade),
        Some(_) => Err(Reject::BadField(
            "type",
            "must be \"ticker\", \"book\" or \"trade\"",
        )),
    }
}

/// Reads the fields of a tick object off the tape; unknown keys are skipped, `null` is absent.
fn raw_from_tape<'a>(obj: &simd_json::tape::Object<'_, 'a>) -> Result<RawTick<'a>, Reject> {
    let mut raw = RawTick::default();
    for (key, v) in obj.iter() {
        let slot = match key {
            "topic" => &mut raw.topic,
            "bid" => &mut raw.bid,
            "ask" => &mut raw.ask,
            "last" => &mut raw.last,
            "size" => &mut raw.size,
            "ts" => &mut raw.ts,
            "seq" => &mut raw.seq,
            _ => continue,
        };
        *slot = if v.is_null() {
            None
        } else if let Some(s) = v.into_string() {
            Some(Scalar::Str(Cow::Borrowed(s)))
        } else if let Some(u) = v.as_u64() {
            Some(Scalar::U64(u))
        } else if let Some(i) = v.as_i64() {
            Some(Scalar::I64(i))
        } else if let Some(f) = v.as_f64() {
            Some(Scalar::F64(f))
        } else {
            Some(Scalar::Other)
        };
    }
    Ok(raw)
}

/// Parses one line in place with simd-json through serde (`line` is scratch afterwards). The
/// feeds use [`TickParser`]; this is the serde route, kept for comparison and as a reference.
pub fn parse_line_serde<'a>(
    line: &'a mut [u8],
    buffers: &mut Buffers,
) -> Result<TickLine<'a>, Reject> {
    expect_object(line)?;
    let raw: RawTick<'a> =
        simd_json::serde::from_slice_with_buffers(line, buffers).map_err(|e| Reject::json(&e))?;
    TickLine::try_from(raw)
}

/// Parses one line with serde_json (no in-place parsing), for comparison.
pub fn parse_line_serde_json(line: &[u8]) -> Result<TickLine<'_>, Reject> {
    expect_object(line)?;
    let raw: RawTick<'_> = serde_json::from_slice(line)
        .map_err(|e| Reject::BadJson(format!("not valid JSON: {e}")))?;
    TickLine::try_from(raw)
}

/// Splits `data` into lines (`\n`, an optional `\r` before it), numbered from `first_line`, and
/// calls `f` with each non-blank one. Lines longer than `max_line` bytes are passed as `Err`.
pub fn for_each_line(
    data: &mut [u8],
    first_line: u64,
    max_line: usize,
    mut f: impl FnMut(u64, Result<&mut [u8], Reject>),
) {
    for (i, mut line) in data.split_mut(|b| *b == b'\n').enumerate() {
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let n = first_line + i as u64;
        if line.len() > max_line {
            f(n, Err(Reject::TooLong { max: max_line }));
        } else {
            f(n, Ok(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectReason;

    /// Parses with every route and checks they agree.
    fn parse(s: &str) -> Result<TickLine<'static>, Reject> {
        let owned = |t: TickLine<'_>| TickLine {
            topic: Cow::Owned(t.topic.into_owned()),
            ..t
        };
        let mut a = s.as_bytes().to_vec();
        let tape = TickParser::default().parse(&mut a).map(owned);
        let mut b = s.as_bytes().to_vec();
        let serde = parse_line_serde(&mut b, &mut Buffers::default()).map(owned);
        let json = parse_line_serde_json(s.as_bytes()).map(owned);
        fn reason(
            r: &Result<TickLine<'static>, Reject>,
        ) -> Result<TickLine<'static>, RejectReason> {
            r.as_ref().map_err(|e| e.reason()).cloned()
        }
        assert_eq!(reason(&tape), reason(&serde), "{s}");
        assert_eq!(reason(&tape), reason(&json), "{s}");
        tape
    }

    fn reason(s: &str) -> RejectReason {
        parse(s).expect_err(s).reason()
    }

    #[test]
    fn the_parser_is_reusable_across_lines() {
        let mut p = TickParser::default();
        for i in 0..3 {
            let mut line =
                format!(r#"{{"topic":"ticker.S{i}","bid":1,"ask":2,"last":1.5,"size":{i}}}"#)
                    .into_bytes();
            let t = p.parse(&mut line).unwrap();
            assert_eq!(t.topic, format!("ticker.S{i}"));
            assert_eq!(t.quote.size, Size(i as f64));
            let mut bad = b"{oops".to_vec();
            assert_eq!(
                p.parse(&mut bad).unwrap_err().reason(),
                RejectReason::BadJson
            );
        }
    }

    #[test]
    fn parses_a_full_tick_with_exact_prices() {
        let t = parse(r#"{"topic":"ticker.AAPL","bid":189.12,"ask":189.14,"last":189.13,"size":200,"ts":1763700000000000,"seq":7,"extra":[1,{"a":2}]}"#).unwrap();
        assert_eq!(t.topic, "ticker.AAPL");
        assert_eq!(t.quote.bid, Price(189.12));
        assert_eq!(t.quote.ask, Price(189.14));
        assert_eq!(t.quote.last, Price(189.13));
        assert_eq!(t.quote.size, Size(200.0));
        assert_eq!((t.ts, t.seq), (Some(1_763_700_000_000_000), Some(7)));
        // Shortest round-trip form survives: the parsed f64 is the one "189.12" denotes.
        assert_eq!(format!("{}", t.quote.bid.0), "189.12");
    }

    #[test]
    fn accepts_numeric_strings_and_missing_optionals() {
        let t = parse(r#"{"topic":"ticker.BTC-USD","bid":"64000.5","ask":"64001","last":"64000.75","size":"0.015"}"#).unwrap();
        assert_eq!(t.quote.size, Size(0.015));
        assert_eq!((t.ts, t.seq), (None, None));
    }

    #[test]
    fn each_failure_has_its_reason() {
        assert_eq!(reason("{not json"), RejectReason::BadJson);
        assert_eq!(reason("[1,2]"), RejectReason::BadJson);
        assert_eq!(reason("42"), RejectReason::BadJson);
        assert_eq!(
            reason(r#"{"bid":1,"ask":1,"last":1,"size":1}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","ask":1,"last":1,"size":1}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(r#"{"topic":"AAPL","bid":1,"ask":1,"last":1,"size":1}"#),
            RejectReason::BadTopic
        );
        assert_eq!(
            reason(r#"{"topic":7,"bid":1,"ask":1,"last":1,"size":1}"#),
            RejectReason::BadTopic
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":"x","ask":1,"last":1,"size":1}"#),
            RejectReason::BadNumber
        );
        // null counts as absent.
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":null,"ask":1,"last":1,"size":1}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":true,"ask":1,"last":1,"size":1}"#),
            RejectReason::BadNumber
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":1,"ask":1,"last":1,"size":-1}"#),
            RejectReason::BadNumber
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":1,"ask":1,"last":1,"size":1,"seq":-3}"#),
            RejectReason::BadNumber
        );
        assert_eq!(
            reason(r#"{"topic":"ticker.A","bid":1,"ask":1,"last":1,"size":1,"ts":1.5}"#),
            RejectReason::BadNumber
        );
    }

    /// Why the feeds' parser rejects `line`, as the log line and `POST /publish` report show it.
    fn message(line: &[u8]) -> String {
        let mut l = line.to_vec();
        TickParser::default()
            .parse(&mut l)
            .expect_err("rejected")
            .to_string()
    }

    #[test]
    fn json_errors_say_what_is_wrong_in_plain_words() {
        let cases: [(&[u8], &str); 17] = [
            (b"garbage", "not valid JSON: unexpected 'g' at byte 0"),
            (
                br#"{"topic":"ticker.A","bid":1"#,
                "not valid JSON: the input ends inside an object or array (truncated?)",
            ),
            (
                br#"{"topic":"ticker.A","bid":"#,
                "not valid JSON: the input ends inside an object or array",
            ),
            (b"[1,2]", "a tick must be a JSON object, found an array"),
            (b"42", "a tick must be a JSON object, found a number"),
            (b"", "not valid JSON: the input is empty"),
            (
                b"{\"topic\":\"ticker.\xff\",\"bid\":1}",
                "not valid JSON: the input is not valid UTF-8",
            ),
            (
                br#"{"topic":"ticker.A\q"}"#,
                r"not valid JSON: invalid escape '\q' in a string",
            ),
            (
                br#"{"topic":"ticker.A\ud800"}"#,
                r"not valid JSON: invalid \u escape in a string",
            ),
            (
                br#"{"bid":1e999}"#,
                "not valid JSON: malformed or out-of-range number near byte",
            ),
            (
                br#"{"bid" 1}"#,
                "not valid JSON: expected ':' after the key, found '1' at byte 7",
            ),
            (
                br#"{bid:1}"#,
                "not valid JSON: unexpected 'b' at byte 1 inside an object",
            ),
            (
                br#"{"bid":1}{"ask":2}"#,
                "not valid JSON: a value is missing before the '}' at byte 8, or more text follows it",
            ),
            (
                br#"{"bid":}"#,
                "not valid JSON: a value is missing before the '}' at byte 7",
            ),
            (br#"{"bid":nope}"#, "not valid JSON: unknown word at byte 7"),
            (
                br#"{"topic":"ticker.A}"#,
                "not valid JSON: a string is not closed, or holds a raw control character",
            ),
            (
                b"\xef\xbb\xbf{\"bid\":1}",
                "not valid JSON: unexpected byte 0xEF at byte 0",
            ),
        ];
        for (line, says) in cases {
            let m = message(line);
            let shown = String::from_utf8_lossy(line);
            assert!(
                m.starts_with(says),
                "{shown:?}: {m:?} should start with {says:?}"
            );
            // None of simd-json's internals: kind names, Debug output, its "at character" wording.
            for internal in [
                "InternalError",
                "Syntax",
                "Expected",
                "Invalid",
                "Eof",
                "Some(",
                "None",
                "at character",
                "malformed input",
            ] {
                assert!(
                    !m.contains(internal),
                    "{shown:?}: {m:?} contains {internal:?}"
                );
            }
        }
        // The serde route (benchmarks, reference) words its errors the same way.
        let mut line = b"garbage".to_vec();
        assert_eq!(
            parse_line_serde(&mut line, &mut Buffers::default())
                .unwrap_err()
                .to_string(),
            "a tick must be a JSON object"
        );
        let mut line = br#"{"topic":"ticker.A","bid":1"#.to_vec();
        assert_eq!(
            parse_line_serde(&mut line, &mut Buffers::default())
                .unwrap_err()
                .to_string(),
            "not valid JSON: the input ends inside an object or array (truncated?)"
        );
    }

    #[test]
    fn lines_are_numbered_blank_skipped_and_capped() {
        let mut data = b"a\r\n\n  \nbbbbbbbbbb\nc".to_vec();
        let mut seen = Vec::new();
        for_each_line(&mut data, 10, 5, |n, l| {
            seen.push((n, l.map(|l| l.to_vec()).map_err(|e| e.reason())))
        });
        assert_eq!(
            seen,
            vec![
                (10, Ok(b"a".to_vec())),
                (13, Err(RejectReason::TooLong)),
                (14, Ok(b"c".to_vec())),
            ]
        );
    }
}
