//! The client protocol: parsing what clients send and encoding what the server answers. Protocol
//! v2 adds to v1 without changing it: `since` and `heartbeat_ms` on subscribe, `epochs` and
//! `recovery` in its ack, and the `invalid_field` error.
//!
//! Requests are small JSON text messages parsed in place with simd-json. Every way a request can be
//! wrong maps to a [`ProtocolError`] whose [`code`](ProtocolError::code) and message go back to the
//! client in an `error` reply; the connection stays open.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::frame::Frame;
use crate::json;
use crate::stream::{Epoch, NotRecovered};
use crate::tick::{Seq, TsMicros};
use crate::topic::{Topic, TopicError, TopicPattern};

/// Where a client's copy of a topic stopped: recover every tick after `seq` of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The topic.
    pub topic: Topic,
    /// The last seq the client has.
    pub seq: Seq,
    /// The epoch that seq belongs to.
    pub epoch: Epoch,
}

/// What a subscribe asks for besides the topics (protocol v2); all optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeOptions {
    /// Topics to recover from a seq instead of starting with the snapshot.
    pub since: Vec<Since>,
    /// Send a `heartbeat` for each of these topics that had no tick for this long.
    pub heartbeat_ms: Option<u64>,
    /// Deliver at most one tick per topic per this many milliseconds (the latest), for every
    /// topic and pattern of the request without its own `@<n>ms` suffix.
    pub throttle_ms: Option<u64>,
    /// Per-entry throttles written Binance-style as `ticker.AAPL@250ms`: the entry without its
    /// suffix, and the milliseconds.
    pub throttle_suffixes: Vec<(Box<str>, u64)>,
    /// Wildcard subscriptions (`ticker.*`): every matching topic, including later ones.
    pub patterns: Vec<TopicPattern>,
}

impl SubscribeOptions {
    /// The throttle asked for `entry` (a topic or pattern as written, without suffix), if any.
    pub fn throttle_for(&self, entry: &str) -> Option<u64> {
        self.throttle_suffixes
            .iter()
            .find(|(e, _)| &**e == entry)
            .map(|(_, ms)| *ms)
            .or(self.throttle_ms)
    }
}

/// A client's request id, kept as the JSON text it arrived as so it is echoed back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// The id as JSON text (a number or a quoted string).
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// A well-formed client request.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    /// Start receiving these topics (a snapshot of each follows the ack, or the ticks missed since
    /// the seq in `options.since`).
    Subscribe {
        topics: Vec<Topic>,
        id: Option<RequestId>,
        options: SubscribeOptions,
    },
    /// Stop receiving these topics, and every topic these patterns brought.
    Unsubscribe {
        topics: Vec<Topic>,
        patterns: Vec<TopicPattern>,
        id: Option<RequestId>,
    },
    /// Application-level liveness check, answered with `pong`.
    Ping { id: Option<RequestId> },
}

/// What was wrong with a client message; becomes an `error` reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolErrorKind {
    /// Not parseable as JSON.
    #[error("{0}")]
    BadJson(String),
    /// Valid JSON of the wrong shape.
    #[error("{0}")]
    BadRequest(&'static str),
    /// `op` names no operation.
    #[error("unknown op {0:?}; expected subscribe, unsubscribe or ping")]
    UnknownOp(String),
    /// A topic name failed validation.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: TopicError },
    /// More topics than the per-connection limit.
    #[error("too many topics: this connection may hold {limit}, the request would make {wanted}")]
    TooManyTopics { limit: usize, wanted: usize },
    /// More wildcard subscriptions than the per-connection limit.
    #[error("too many wildcard subscriptions: this connection may hold {limit}, the request would make {wanted}")]
    TooManyPatterns { limit: usize, wanted: usize },
    /// The topic has no data yet and the server already waits on as many such topics as it
    /// allows (`max_requested_topics`).
    #[error("topic limit reached: {topic:?} has no data yet and the server already waits on {limit} topics that no feed publishes")]
    TopicLimit { limit: usize, topic: String },
    /// Binary frames carry nothing in protocol v1.
    #[error("binary messages are not supported; send JSON text")]
    BinaryNotSupported,
    /// The client sends requests faster than its allowance.
    #[error("too many requests: at most {per_second} messages per second")]
    RateLimited { per_second: u32 },
    /// The connection's credential does not entitle it to these topics (the others in the request
    /// were subscribed).
    #[error("not entitled to {}", forbidden_list(.topics))]
    Forbidden { topics: Vec<String> },
    /// A field of a well-formed request has a value the server cannot use; `field` names it
    /// (e.g. `since.ticker.AAPL.seq`) and the reply carries it.
    #[error("{field}: {problem}")]
    InvalidField { field: String, problem: String },
}

impl ProtocolErrorKind {
    /// Every error code, for documentation and metrics labels.
    pub const CODES: [&'static str; 11] = [
        "bad_json",
        "bad_request",
        "unknown_op",
        "invalid_topic",
        "too_many_topics",
        "too_many_patterns",
        "topic_limit",
        "binary_not_supported",
        "rate_limited",
        "forbidden",
        "invalid_field",
    ];
}

/// Names at most 10 topics, then how many more, so the message stays small.
fn forbidden_list(topics: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = topics
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if topics.len() > SHOWN {
        s.push_str(&format!(" and {} more", topics.len() - SHOWN));
    }
    s
}

/// A [`ProtocolErrorKind`] plus the request id, when one could be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}")]
pub struct ProtocolError {
    /// What went wrong.
    pub kind: ProtocolErrorKind,
    /// The offending request's id, echoed in the reply.
    pub id: Option<RequestId>,
}

impl ProtocolError {
    /// An error with no request id.
    pub fn new(kind: ProtocolErrorKind) -> Self {
        Self { kind, id: None }
    }

    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ProtocolErrorKind::BadJson(_) => "bad_json",
            ProtocolErrorKind::BadRequest(_) => "bad_request",
            ProtocolErrorKind::UnknownOp(_) => "unknown_op",
            ProtocolErrorKind::InvalidTopic { .. } => "invalid_topic",
            ProtocolErrorKind::TooManyTopics { .. } => "too_many_topics",
            ProtocolErrorKind::TooManyPatterns { .. } => "too_many_patterns",
            ProtocolErrorKind::TopicLimit { .. } => "topic_limit",
            ProtocolErrorKind::BinaryNotSupported => "binary_not_supported",
            ProtocolErrorKind::RateLimited { .. } => "rate_limited",
            ProtocolErrorKind::Forbidden { .. } => "forbidden",
            ProtocolErrorKind::InvalidField { .. } => "invalid_field",
        }
    }

    /// The `error` reply frame for this error.
    pub fn to_frame(&self) -> Frame {
        ServerReply::Error {
            code: self.code(),
            message: &self.kind.to_string(),
            field: match &self.kind {
                ProtocolErrorKind::InvalidField { field, .. } => Some(field),
                _ => None,
            },
            id: self.id.as_ref(),
        }
        .to_frame()
    }
}

impl From<ProtocolErrorKind> for ProtocolError {
    fn from(kind: ProtocolErrorKind) -> Self {
        Self::new(kind)
    }
}

impl ClientRequest {
    /// Parses one text message. simd-json parses in place, so `buf` is scratch afterwards.
    pub fn parse(buf: &mut [u8]) -> Result<ClientRequest, ProtocolError> {
        let value = simd_json::to_borrowed_value(buf).map_err(|e| {
            ProtocolError::new(ProtocolErrorKind::BadJson(json::describe_error(&e)))
        })?;
        let Some(obj) = value.as_object() else {
            return Err(ProtocolErrorKind::BadRequest("request must be a JSON object").into());
        };
        let id = match obj.get("id") {
            None => None,
            Some(v) => Some(parse_id(v)?),
        };
        let with_id = |kind: ProtocolErrorKind| ProtocolError {
            kind,
            id: id.clone(),
        };
        let op = match obj.get("op") {
            None => return Err(with_id(ProtocolErrorKind::BadRequest("missing \"op\""))),
            Some(v) => v
                .as_str()
                .ok_or_else(|| with_id(ProtocolErrorKind::BadRequest("\"op\" must be a string")))?,
        };
        match op {
            "subscribe" => {
                let Entries {
                    topics,
                    patterns,
                    suffixes,
                } = parse_topics(obj.get("topics")).map_err(with_id)?;
                let options = SubscribeOptions {
                    since: parse_since(obj.get("since"), &topics, &patterns).map_err(with_id)?,
                    heartbeat_ms: parse_millis(obj.get("heartbeat_ms"), "heartbeat_ms")
                        .map_err(with_id)?,
                    throttle_ms: parse_millis(obj.get("throttle_ms"), "throttle_ms")
                        .map_err(with_id)?,
                    throttle_suffixes: suffixes,
                    patterns,
                };
                Ok(ClientRequest::Subscribe {
                    topics,
                    id,
                    options,
                })
            }
            "unsubscribe" => {
                // A suffix names a throttle, not another subscription: unsubscribing
                // `ticker.AAPL@250ms` stops `ticker.AAPL`.
                let Entries {
                    topics, patterns, ..
                } = parse_topics(obj.get("topics")).map_err(with_id)?;
                Ok(ClientRequest::Unsubscribe {
                    topics,
                    patterns,
                    id,
                })
            }
            "ping" => Ok(ClientRequest::Ping { id }),
            other => {
                let mut shown: String = other.chars().take(32).collect();
                if shown.len() < other.len() {
                    shown.push('…');
                }
                Err(with_id(ProtocolErrorKind::UnknownOp(shown)))
            }
        }
    }

    /// The request's id, if it carried one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientRequest::Subscribe { id, .. }
            | ClientRequest::Unsubscribe { id, .. }
            | ClientRequest::Ping { id } => id.as_ref(),
        }
    }
}

fn parse_id(v: &BorrowedValue<'_>) -> Result<RequestId, ProtocolError> {
    let mut out = Vec::new();
    if let Some(s) = v.as_str() {
        if s.len() > 64 {
            return Err(ProtocolErrorKind::BadRequest("\"id\" is longer than 64 bytes").into());
        }
        json::write_str(&mut out, s);
    } else if let Some(u) = v.as_u64() {
        json::write_u64(&mut out, u);
    } else if let Some(i) = v.as_i64() {
        json::write_i64(&mut out, i);
    } else {
        return Err(ProtocolErrorKind::BadRequest("\"id\" must be an integer or a string").into());
    }
    // Only write_str/itoa output is stored: always valid UTF-8.
    Ok(RequestId(String::from_utf8_lossy(&out).into()))
}

/// The entries of a request's `topics`, sorted by kind.
struct Entries {
    topics: Vec<Topic>,
    patterns: Vec<TopicPattern>,
    suffixes: Vec<(Box<str>, u64)>,
}

/// `topics`: a non-empty array of topics (`ticker.AAPL`) and wildcard patterns (`ticker.*`), each
/// optionally with a throttle suffix (`@250ms`); duplicates are dropped.
fn parse_topics(v: Option<&BorrowedValue<'_>>) -> Result<Entries, ProtocolErrorKind> {
    const SHAPE: &str = "\"topics\" must be a non-empty array of strings";
    let arr = v
        .and_then(|v| v.as_array())
        .ok_or(ProtocolErrorKind::BadRequest(SHAPE))?;
    if arr.is_empty() {
        return Err(ProtocolErrorKind::BadRequest(SHAPE));
    }
    let mut out = Entries {
        topics: Vec::with_capacity(arr.len()),
        patterns: Vec::new(),
        suffixes: Vec::new(),
    };
    for item in arr {
        let written = item.as_str().ok_or(ProtocolErrorKind::BadRequest(SHAPE))?;
        let shown = || written.chars().take(80).collect::<String>();
        let (name, throttle) = split_throttle_suffix(written).ok_or_else(|| {
            invalid(
                "topics",
                format!("{:?}: a throttle suffix must be @<n>ms with n > 0", shown()),
            )
        })?;
        let bad = |reason| ProtocolErrorKind::InvalidTopic {
            topic: shown(),
            reason,
        };
        if TopicPattern::is_pattern(name) {
            let pattern = TopicPattern::new(name).map_err(bad)?;
            if !out.patterns.contains(&pattern) {
                out.patterns.push(pattern);
            }
        } else {
            let topic = Topic::new(name).map_err(bad)?;
            if !out.topics.contains(&topic) {
                out.topics.push(topic);
            }
        }
        if let Some(ms) = throttle {
            out.suffixes.push((name.into(), ms));
        }
    }
    Ok(out)
}

/// `name@<n>ms` → (`name`, Some(n)); a name without `@` → (`name`, None); `None` when the suffix
/// is malformed.
fn split_throttle_suffix(written: &str) -> Option<(&str, Option<u64>)> {
    let Some((name, suffix)) = written.rsplit_once('@') else {
        return Some((written, None));
    };
    let ms: u64 = suffix.strip_suffix("ms")?.parse().ok()?;
    (ms > 0).then_some((name, Some(ms)))
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ProtocolErrorKind {
    ProtocolErrorKind::InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}

/// `since`: an object of topic → `{"seq": n, "epoch": "..."}`, each topic one of `topics` or
/// matched by one of `patterns` (a client resuming a wildcard names the topics it had).
fn parse_since(
    v: Option<&BorrowedValue<'_>>,
    topics: &[Topic],
    patterns: &[TopicPattern],
) -> Result<Vec<Since>, ProtocolErrorKind> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let obj = v.as_object().ok_or_else(|| {
        invalid(
            "since",
            "must be an object of topic -> {\"seq\": n, \"epoch\": \"...\"}",
        )
    })?;
    let mut out = Vec::with_capacity(obj.len());
    for (name, pos) in obj.iter() {
        let shown: String = name.chars().take(80).collect();
        let field = |f: &str| format!("since.{shown}{f}");
        let not_asked = || {
            invalid(
                field(""),
                "names a topic this request does not subscribe to",
            )
        };
        let topic = match topics.iter().find(|t| t.as_str() == name.as_ref()) {
            Some(t) => t.clone(),
            None => Topic::new(name)
                .ok()
                .filter(|t| patterns.iter().any(|p| p.matches(t)))
                .ok_or_else(not_asked)?,
        };
        let topic = &topic;
        if out.iter().any(|s: &Since| &s.topic == topic) {
            return Err(invalid(field(""), "is given twice"));
        }
        let pos = pos
            .as_object()
            .ok_or_else(|| invalid(field(""), "must be {\"seq\": n, \"epoch\": \"...\"}"))?;
        let seq = pos
            .get("seq")
            .ok_or_else(|| invalid(field(".seq"), "is missing"))?
            .as_u64()
            .ok_or_else(|| invalid(field(".seq"), "must be an integer >= 0"))?;
        let epoch = pos
            .get("epoch")
            .ok_or_else(|| invalid(field(".epoch"), "is missing"))?
            .as_str()
            .ok_or_else(|| invalid(field(".epoch"), "must be a string"))?;
        let epoch = Epoch::new(epoch).map_err(|e| invalid(field(".epoch"), e.to_string()))?;
        out.push(Since {
            topic: topic.clone(),
            seq: Seq(seq),
            epoch,
        });
    }
    Ok(out)
}

/// `heartbeat_ms` / `throttle_ms`: a positive integer; its bounds are the server's configuration.
fn parse_millis(
    v: Option<&BorrowedValue<'_>>,
    field: &str,
) -> Result<Option<u64>, ProtocolErrorKind> {
    let Some(v) = v else { return Ok(None) };
    match v.as_u64() {
        Some(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(invalid(field, "must be a positive integer of milliseconds")),
    }
}

/// The outcome of one topic's recovery, for the `recovery` object of the ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The topic.
    pub topic: Topic,
    /// `Ok` = the missed ticks follow; `Err` = they cannot, and the snapshot follows instead.
    pub outcome: Result<(), NotRecovered>,
}

/// A reply the server sends on the priority lane (never dropped by backpressure).
#[derive(Debug)]
pub enum ServerReply<'a> {
    /// Ack of a subscribe; `pending` lists the topics that have no data yet (their first tick
    /// follows when a feed publishes it), and is left out when empty. `epochs` names the seq space
    /// of each topic; `recovery` answers the request's `since`, and is left out without one.
    Subscribed {
        topics: &'a [Topic],
        patterns: &'a [TopicPattern],
        pending: &'a [Topic],
        epochs: &'a [(Topic, Epoch)],
        recovery: &'a [Recovery],
        id: Option<&'a RequestId>,
    },
    /// Ack of an unsubscribe.
    Unsubscribed {
        topics: &'a [Topic],
        patterns: &'a [TopicPattern],
        id: Option<&'a RequestId>,
    },
    /// Answer to an application ping, with the server's clock when it answered (`ts`, unix µs), so
    /// a client can estimate its clock offset from the round trip (NTP style) and correct latencies.
    Pong {
        ts: TsMicros,
        id: Option<&'a RequestId>,
    },
    /// A request could not be served.
    Error {
        code: &'a str,
        message: &'a str,
        /// The field at fault, for `invalid_field`.
        field: Option<&'a str>,
        id: Option<&'a RequestId>,
    },
}

impl ServerReply<'_> {
    /// The reply as JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let id = match self {
            ServerReply::Subscribed {
                topics,
                patterns,
                pending,
                epochs,
                recovery,
                id,
            } => {
                out.extend_from_slice(b"{\"type\":\"subscribed\",\"topics\":");
                json::write_str_array(&mut out, topics);
                if !patterns.is_empty() {
                    out.extend_from_slice(b",\"patterns\":");
                    json::write_str_array(&mut out, patterns);
                }
                if !pending.is_empty() {
                    out.extend_from_slice(b",\"pending\":");
                    json::write_str_array(&mut out, pending);
                }
                if !epochs.is_empty() {
                    out.extend_from_slice(b",\"epochs\":{");
                    for (i, (topic, epoch)) in epochs.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json::write_str(&mut out, topic.as_str());
                        out.push(b':');
                        json::write_str(&mut out, epoch.as_str());
                    }
                    out.push(b'}');
                }
                if !recovery.is_empty() {
                    out.extend_from_slice(b",\"recovery\":{");
                    for (i, r) in recovery.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json::write_str(&mut out, r.topic.as_str());
                        match r.outcome {
                            Ok(()) => out.extend_from_slice(b":{\"recovered\":true}"),
                            Err(why) => {
                                out.extend_from_slice(b":{\"recovered\":false,\"reason\":\"");
                                out.extend_from_slice(why.as_str().as_bytes());
                                out.extend_from_slice(b"\"}");
                            }
                        }
                    }
                    out.push(b'}');
                }
                id
            }
            ServerReply::Unsubscribed {
                topics,
                patterns,
                id,
            } => {
                out.extend_from_slice(b"{\"type\":\"unsubscribed\",\"topics\":");
                json::write_str_array(&mut out, topics);
                if !patterns.is_empty() {
                    out.extend_from_slice(b",\"patterns\":");
                    json::write_str_array(&mut out, patterns);
                }
                id
            }
            ServerReply::Pong { ts, id } => {
                out.extend_from_slice(b"{\"type\":\"pong\",\"ts\":");
                json::write_u64(&mut out, ts.0);
                id
            }
            ServerReply::Error {
                code,
                message,
                field,
                id,
            } => {
                out.extend_from_slice(b"{\"type\":\"error\",\"code\":");
                json::write_str(&mut out, code);
                out.extend_from_slice(b",\"message\":");
                json::write_str(&mut out, message);
                if let Some(field) = field {
                    out.extend_from_slice(b",\"field\":");
                    json::write_str(&mut out, field);
                }
                id
            }
        };
        if let Some(id) = id {
            out.extend_from_slice(b",\"id\":");
            out.extend_from_slice(id.as_json().as_bytes());
        }
        out.push(b'}');
        out
    }

    /// The reply as a ready-to-send text frame.
    pub fn to_frame(&self) -> Frame {
        Frame::text(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientRequest, ProtocolError> {
        ClientRequest::parse(&mut s.as_bytes().to_vec())
    }

    fn json_of(f: &Frame) -> serde_json::Value {
        serde_json::from_slice(f.payload()).unwrap()
    }

    #[test]
    fn parses_requests() {
        let r = parse(
            r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT","ticker.AAPL"],"id":1}"#,
        )
        .unwrap();
        let ClientRequest::Subscribe { topics, id, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(topics.len(), 2, "duplicates collapse");
        assert_eq!(id.unwrap().as_json(), "1");
        assert!(matches!(
            parse(r#"{"op":"unsubscribe","topics":["ticker.AAPL"],"id":"x\"y"}"#).unwrap(),
            ClientRequest::Unsubscribe { .. }
        ));
        let p = parse(r#"{"op":"ping","id":-3}"#).unwrap();
        assert_eq!(p.id().unwrap().as_json(), "-3");
    }

    #[test]
    fn errors_name_the_problem_and_keep_the_id() {
        let e = parse("{not json").unwrap_err();
        assert_eq!(e.code(), "bad_json");
        // In plain words, without the parser's internals.
        let m = e.to_string();
        assert!(m.starts_with("not valid JSON: "), "{m}");
        assert!(!m.contains("character") && !m.contains("Expected"), "{m}");
        let m = parse("true").unwrap_err().to_string();
        assert!(
            !m.contains("ExpectedTrue") && !m.contains("character"),
            "{m}"
        );
        let e = parse(r#"{"op":"fly","id":7}"#).unwrap_err();
        assert_eq!(e.code(), "unknown_op");
        let v = json_of(&e.to_frame());
        assert_eq!(v["type"], "error");
        assert_eq!(v["id"], 7);
        assert!(v["message"].as_str().unwrap().contains("fly"));
        let e = parse(r#"{"op":"subscribe","topics":["bad topic"],"id":"a"}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_topic");
        assert_eq!(json_of(&e.to_frame())["id"], "a");
        assert_eq!(
            parse(r#"{"op":"subscribe","topics":[]}"#)
                .unwrap_err()
                .code(),
            "bad_request"
        );
        assert_eq!(
            parse(r#"{"op":"subscribe","topics":[1]}"#)
                .unwrap_err()
                .code(),
            "bad_request"
        );
        assert_eq!(
            parse(r#"{"op":"subscribe"}"#).unwrap_err().code(),
            "bad_request"
        );
        assert_eq!(parse(r#"[1,2]"#).unwrap_err().code(), "bad_request");
        assert_eq!(parse(r#"{"topics":[]}"#).unwrap_err().code(), "bad_request");
        assert_eq!(
            parse(r#"{"op":"ping","id":{"a":1}}"#).unwrap_err().code(),
            "bad_request"
        );
    }

    #[test]
    fn forbidden_names_the_topics() {
        let e = ProtocolError::new(ProtocolErrorKind::Forbidden {
            topics: vec!["ticker.MSFT".into(), "ticker.NVDA".into()],
        });
        assert_eq!(e.code(), "forbidden");
        let v = json_of(&e.to_frame());
        assert_eq!(v["message"], "not entitled to ticker.MSFT, ticker.NVDA");
        let many = (0..12).map(|i| format!("t.{i}")).collect();
        let e = ProtocolError::new(ProtocolErrorKind::Forbidden { topics: many });
        assert!(e.to_string().ends_with("t.9 and 2 more"), "{e}");
    }

    #[test]
    fn replies_are_protocol_json() {
        let topics = vec![Topic::new("ticker.AAPL").unwrap()];
        let id = parse(r#"{"op":"ping","id":1}"#).unwrap().id().cloned();
        let f = ServerReply::Subscribed {
            topics: &topics,
            patterns: &[],
            pending: &[],
            epochs: &[],
            recovery: &[],
            id: id.as_ref(),
        }
        .to_frame();
        assert_eq!(
            f.payload(),
            br#"{"type":"subscribed","topics":["ticker.AAPL"],"id":1}"#
        );
        let f = ServerReply::Subscribed {
            topics: &topics,
            patterns: &[],
            pending: &topics,
            epochs: &[],
            recovery: &[],
            id: None,
        }
        .to_frame();
        assert_eq!(
            f.payload(),
            br#"{"type":"subscribed","topics":["ticker.AAPL"],"pending":["ticker.AAPL"]}"#
        );
        let epoch = Epoch::new("k3f9").unwrap();
        let f = ServerReply::Subscribed {
            topics: &topics,
            patterns: &[],
            pending: &[],
            epochs: &[(topics[0].clone(), epoch)],
            recovery: &[Recovery {
                topic: topics[0].clone(),
                outcome: Err(NotRecovered::TooOld),
            }],
            id: None,
        }
        .to_frame();
        assert_eq!(
            f.payload(),
            br#"{"type":"subscribed","topics":["ticker.AAPL"],"epochs":{"ticker.AAPL":"k3f9"},"recovery":{"ticker.AAPL":{"recovered":false,"reason":"too_old"}}}"#
        );
        let f = ServerReply::Pong {
            ts: TsMicros(1763700000000000),
            id: None,
        }
        .to_frame();
        assert_eq!(f.payload(), br#"{"type":"pong","ts":1763700000000000}"#);
    }

    #[test]
    fn parses_since_and_heartbeat() {
        let r = parse(
            r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"since":{"ticker.AAPL":{"seq":1234,"epoch":"k3f9"}},"heartbeat_ms":1000,"id":7}"#,
        )
        .unwrap();
        let ClientRequest::Subscribe { options, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(options.heartbeat_ms, Some(1000));
        assert_eq!(options.since.len(), 1);
        assert_eq!(options.since[0].topic.as_str(), "ticker.AAPL");
        assert_eq!(options.since[0].seq, Seq(1234));
        assert_eq!(options.since[0].epoch.as_str(), "k3f9");
    }

    #[test]
    fn parses_patterns_and_throttles() {
        let r = parse(
            r#"{"op":"subscribe","topics":["ticker.*","ticker.AAPL@250ms","bar.1m.*@1000ms","ticker.*"],"throttle_ms":500,"since":{"ticker.MSFT":{"seq":3,"epoch":"e"}}}"#,
        )
        .unwrap();
        let ClientRequest::Subscribe {
            topics, options, ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(topics, vec![Topic::new("ticker.AAPL").unwrap()]);
        let patterns: Vec<_> = options.patterns.iter().map(|p| p.as_str()).collect();
        assert_eq!(patterns, ["ticker.*", "bar.1m.*"]);
        assert_eq!(options.throttle_for("ticker.AAPL"), Some(250));
        assert_eq!(options.throttle_for("bar.1m.*"), Some(1000));
        assert_eq!(options.throttle_for("ticker.*"), Some(500));
        // A topic a pattern of the request matches may be resumed.
        assert_eq!(options.since[0].topic.as_str(), "ticker.MSFT");
        let r = parse(r#"{"op":"unsubscribe","topics":["ticker.*","ticker.AAPL@250ms"]}"#).unwrap();
        let ClientRequest::Unsubscribe {
            topics, patterns, ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(topics[0].as_str(), "ticker.AAPL");
        assert_eq!(patterns[0].as_str(), "ticker.*");
    }

    #[test]
    fn malformed_patterns_and_throttles_are_named() {
        for (topics, code) in [
            (r#"["ticker.AAPL@250"]"#, "invalid_field"),
            (r#"["ticker.AAPL@0ms"]"#, "invalid_field"),
            (r#"["ticker.AAPL@fastms"]"#, "invalid_field"),
            (r#"["ticker.A*"]"#, "invalid_topic"),
            (r#"["*"]"#, "invalid_topic"),
        ] {
            let e = parse(&format!(r#"{{"op":"subscribe","topics":{topics}}}"#)).unwrap_err();
            assert_eq!(e.code(), code, "{topics}");
            assert!(
                e.to_string().contains("ticker") || topics.contains('*'),
                "{e}"
            );
        }
        let e = parse(r#"{"op":"subscribe","topics":["ticker.A"],"throttle_ms":"1"}"#).unwrap_err();
        assert_eq!(
            e.kind,
            invalid("throttle_ms", "must be a positive integer of milliseconds")
        );
    }

    #[test]
    fn malformed_since_or_heartbeat_names_the_field() {
        let cases = [
            (r#""since":5"#, "since"),
            (
                r#""since":{"ticker.X":{"seq":1,"epoch":"e"}}"#,
                "since.ticker.X",
            ),
            (r#""since":{"ticker.AAPL":7}"#, "since.ticker.AAPL"),
            (
                r#""since":{"ticker.AAPL":{"epoch":"e"}}"#,
                "since.ticker.AAPL.seq",
            ),
            (
                r#""since":{"ticker.AAPL":{"seq":-1,"epoch":"e"}}"#,
                "since.ticker.AAPL.seq",
            ),
            (
                r#""since":{"ticker.AAPL":{"seq":1}}"#,
                "since.ticker.AAPL.epoch",
            ),
            (
                r#""since":{"ticker.AAPL":{"seq":1,"epoch":"a b"}}"#,
                "since.ticker.AAPL.epoch",
            ),
            (r#""heartbeat_ms":0"#, "heartbeat_ms"),
            (r#""heartbeat_ms":"1s""#, "heartbeat_ms"),
        ];
        for (extra, field) in cases {
            let text = format!(r#"{{"op":"subscribe","topics":["ticker.AAPL"],{extra},"id":3}}"#);
            let e = parse(&text).unwrap_err();
            assert_eq!(e.code(), "invalid_field", "{text}");
            let v = json_of(&e.to_frame());
            assert_eq!(v["field"], field, "{text}");
            assert_eq!(v["id"], 3, "{text}");
            assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
        }
    }
}
