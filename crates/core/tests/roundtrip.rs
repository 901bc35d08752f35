//! Property tests of the codec: frame header/payload round trip for any length, tick JSON parsed back
//! (serde_json) equal to the tick with prices in shortest round-trip form, and topic validation
//! accepting exactly the allowed alphabet and length.

use proptest::prelude::*;
use tickcast_core::frame::{write_tick_json, OpCode};
use tickcast_core::topic::MAX_TOPIC_LEN;
use tickcast_core::{Frame, Price, Seq, Size, Tick, Topic, TopicError, TsMicros};

const ALLOWED: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";

fn opcode() -> impl Strategy<Value = OpCode> {
    prop::sample::select(vec![
        OpCode::Text,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ])
}

/// Lengths around every header boundary (125/126, 65535/65536), the inline cap (252/253), and random.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let edges = prop::sample::select(vec![
        0usize, 1, 125, 126, 127, 252, 253, 254, 65535, 65536, 65537,
    ]);
    let len = prop_oneof![edges, 0usize..300, 0usize..70_000];
    (len, any::<u8>()).prop_map(|(len, seed)| {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    })
}

/// Any finite f64: normal, subnormal, zero, either sign, plus typical quoted prices.
fn price() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        (0u64..100_000_000).prop_map(|cents| cents as f64 / 100.0),
        (0u64..1_000_000_000).prop_map(|v| v as f64 / 1e8),
    ]
}

fn valid_topic() -> impl Strategy<Value = String> {
    let part = |max| {
        prop::collection::vec(
            prop::sample::select(ALLOWED.chars().collect::<Vec<_>>()),
            1..max,
        )
    };
    (part(20), part(44)).prop_map(|(c, s)| {
        let channel: String = c.into_iter().filter(|c| *c != '.').collect();
        let channel = if channel.is_empty() {
            "x".to_string()
        } else {
            channel
        };
        format!("{channel}.{}", s.into_iter().collect::<String>())
    })
}

/// Strings over the allowed alphabet plus characters just outside it (space, `/`, `"`, `\`, NUL,
/// non-ASCII letters and digits, an emoji), of lengths around the limit.
fn any_topic() -> impl Strategy<Value = String> {
    let mut chars: Vec<char> = ALLOWED.chars().collect();
    chars.extend([
        ' ', '/', '"', '\\', '\0', '\n', '*', '>', 'Ä', 'é', '٣', '🚀', '.', '.',
    ]);
    prop::collection::vec(prop::sample::select(chars), 0..80).prop_map(String::from_iter)
}

/// The rules, written independently of `topic.rs`.
fn oracle(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|c| !ALLOWED.contains(*c)) {
        return Err(TopicError::BadChar(c));
    }
    let dot = name.find('.').ok_or(TopicError::NoChannel)?;
    if dot == 0 || dot == name.len() - 1 {
        return Err(TopicError::NoChannel);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frame_header_and_payload_round_trip(op in opcode(), payload in payload()) {
        let f = Frame::new(op, &payload);
        let b = f.as_slice();
        prop_assert_eq!(b[0], 0x80 | op as u8);
        let (hlen, len) = match b[1] {
            126 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
            127 => (10, u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize),
            n => (2, n as usize),
        };
        // The shortest encoding of the length, unmasked.
        let expected_hlen = if payload.len() < 126 { 2 } else if payload.len() <= 65535 { 4 } else { 10 };
        prop_assert_eq!(hlen, expected_hlen);
        prop_assert_eq!(len, payload.len());
        prop_assert_eq!(f.len(), hlen + payload.len());
        prop_assert_eq!(&b[hlen..], &payload[..]);
        prop_assert_eq!(f.payload(), &payload[..]);
        prop_assert_eq!(f.is_close(), op == OpCode::Close);
    }

    #[test]
    fn tick_json_parses_back_to_the_tick(
        topic in valid_topic(),
        seq in any::<u64>(),
        ts in any::<u64>(),
        bid in price(), ask in price(), last in price(), size in price(),
    ) {
        let tick = Tick {
            topic: Topic::new(&topic).unwrap(),
            seq: Seq(seq),
            ts: TsMicros(ts),
            bid: Price(bid),
            ask: Price(ask),
            last: Price(last),
            size: Size(size),
        };
        let mut json = Vec::new();
        write_tick_json(&mut json, &tick);
        let v: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        prop_assert_eq!(v.as_object().unwrap().len(), 8);
        prop_assert_eq!(&v["type"], "tick");
        prop_assert_eq!(v["topic"].as_str(), Some(topic.as_str()));
        prop_assert_eq!(v["seq"].as_u64(), Some(seq));
        prop_assert_eq!(v["ts"].as_u64(), Some(ts));
        let text = std::str::from_utf8(&json).unwrap();
        for (key, want) in [("bid", bid), ("ask", ask), ("last", last), ("size", size)] {
            let got = v[key].as_f64().expect("a number");
            // Exact: -0.0 == 0.0 is the only latitude.
            prop_assert_eq!(got, want, "{} in {}", key, text);
            // Shortest form: what ryu prints for the value (integers without ".0").
            let start = text.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
            let num: String = text[start..].chars().take_while(|c| !matches!(c, ',' | '}')).collect();
            prop_assert_eq!(num.parse::<f64>(), Ok(want), "{} in {}", key, text);
            if want.fract() == 0.0 && want.abs() < 9_007_199_254_740_992.0 {
                prop_assert_eq!(num, format!("{}", want as i64));
            } else {
                prop_assert!(significant_digits(&num) <= shortest_digits(want), "{} in {}", key, text);
            }
        }
    }

    #[test]
    fn topic_validation_matches_the_rules(name in any_topic()) {
        prop_assert_eq!(Topic::new(&name).map(|t| t.as_str().to_string()), oracle(&name).map(|()| name.clone()));
    }

    #[test]
    fn every_well_formed_topic_is_accepted(name in valid_topic()) {
        prop_assert!(name.len() <= MAX_TOPIC_LEN);
        let t = Topic::new(&name).unwrap();
        prop_assert_eq!(format!("{}.{}", t.channel(), t.symbol()), name);
    }
}

/// Significant digits of a JSON number's text (sign, point, exponent and padding zeros aside).
fn significant_digits(num: &str) -> usize {
    let mantissa = num.split(['e', 'E']).next().unwrap();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1)
}

/// The fewest significant digits whose decimal parses back to `v` (searched, not taken from ryu).
fn shortest_digits(v: f64) -> usize {
    (1..=17)
        .find(|d| format!("{:.*e}", d - 1, v).parse::<f64>() == Ok(v))
        .expect("17 digits always round-trip")
}
