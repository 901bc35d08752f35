//! Client protocol v1: parsing what clients send and encoding what the server answers.
//!
//! Requests are small JSON text messages parsed in place with simd-json. Every way a request can be
//! wrong maps to a [`ProtocolError`] whose [`code`](ProtocolError::code) and message go back to the
//! client in an `error` reply; the connection stays open.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::frame::Frame;
use crate::json;
use crate::topic::{Topic, TopicError};

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
    /// Start receiving these topics (a snapshot of each follows the ack).
    Subscribe {
        topics: Vec<Topic>,
        id: Option<RequestId>,
    },
    /// Stop receiving these topics.
    Unsubscribe {
        topics: Vec<Topic>,
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
}

impl ProtocolErrorKind {
    /// Every error code, for documentation and metrics labels.
    pub const CODES: [&'static str; 9] = [
        "bad_json",
        "bad_request",
        "unknown_op",
        "invalid_topic",
        "too_many_topics",
        "topic_limit",
        "binary_not_supported",
        "rate_limited",
        "forbidden",
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
            ProtocolErrorKind::TopicLimit { .. } => "topic_limit",
            ProtocolErrorKind::BinaryNotSupported => "binary_not_supported",
            ProtocolErrorKind::RateLimited { .. } => "rate_limited",
            ProtocolErrorKind::Forbidden { .. } => "forbidden",
        }
    }

    /// The `error` reply frame for this error.
    pub fn to_frame(&self) -> Frame {
        ServerReply::Error {
            code: self.code(),
            message: &self.kind.to_string(),
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
            "subscribe" | "unsubscribe" => {
                let topics = parse_topics(obj.get("topics")).map_err(with_id)?;
                Ok(if op == "subscribe" {
                    ClientRequest::Subscribe { topics, id }
                } else {
                    ClientRequest::Unsubscribe { topics, id }
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

fn parse_topics(v: Option<&BorrowedValue<'_>>) -> Result<Vec<Topic>, ProtocolErrorKind> {
    const SHAPE: &str = "\"topics\" must be a non-empty array of strings";
    let arr = v
        .and_then(|v| v.as_array())
        .ok_or(ProtocolErrorKind::BadRequest(SHAPE))?;
    if arr.is_empty() {
        return Err(ProtocolErrorKind::BadRequest(SHAPE));
    }
    let mut topics = Vec::with_capacity(arr.len());
    for item in arr {
        let name = item.as_str().ok_or(ProtocolErrorKind::BadRequest(SHAPE))?;
        let topic = Topic::new(name).map_err(|reason| ProtocolErrorKind::InvalidTopic {
            topic: name.chars().take(80).collect(),
            reason,
        })?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    Ok(topics)
}

/// A reply the server sends on the priority lane (never dropped by backpressure).
#[derive(Debug)]
pub enum ServerReply<'a> {
    /// Ack of a subscribe; `pending` lists the topics that have no data yet (their first tick
    /// follows when a feed publishes it), and is left out when empty.
    Subscribed {
        topics: &'a [Topic],
        pending: &'a [Topic],
        id: Option<&'a RequestId>,
    },
    /// Ack of an unsubscribe.
    Unsubscribed {
        topics: &'a [Topic],
        id: Option<&'a RequestId>,
    },
    /// Answer to an application ping.
    Pong { id: Option<&'a RequestId> },
    /// A request could not be served.
    Error {
        code: &'a str,
        message: &'a str,
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
                pending,
                id,
            } => {
                out.extend_from_slice(b"{\"type\":\"subscribed\",\"topics\":");
                json::write_str_array(&mut out, topics);
                if !pending.is_empty() {
                    out.extend_from_slice(b",\"pending\":");
                    json::write_str_array(&mut out, pending);
                }
                id
            }
            ServerReply::Unsubscribed { topics, id } => {
                out.extend_from_slice(b"{\"type\":\"unsubscribed\",\"topics\":");
                json::write_str_array(&mut out, topics);
                id
            }
            ServerReply::Pong { id } => {
                out.extend_from_slice(b"{\"type\":\"pong\"");
                id
            }
            ServerReply::Error { code, message, id } => {
                out.extend_from_slice(b"{\"type\":\"error\",\"code\":");
                json::write_str(&mut out, code);
                out.extend_from_slice(b",\"message\":");
                json::write_str(&mut out, message);
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
        let ClientRequest::Subscribe { topics, id } = r else {
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
            pending: &[],
            id: id.as_ref(),
        }
        .to_frame();
        assert_eq!(
            f.payload(),
            br#"{"type":"subscribed","topics":["ticker.AAPL"],"id":1}"#
        );
        let f = ServerReply::Subscribed {
            topics: &topics,
            pending: &topics,
            id: None,
        }
        .to_frame();
        assert_eq!(
            f.payload(),
            br#"{"type":"subscribed","topics":["ticker.AAPL"],"pending":["ticker.AAPL"]}"#
        );
        let f = ServerReply::Pong { id: None }.to_frame();
        assert_eq!(f.payload(), br#"{"type":"pong"}"#);
    }
}
