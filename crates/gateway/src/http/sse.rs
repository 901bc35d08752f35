//! `GET /sse`: the Server-Sent Events transport, for clients that cannot use WebSockets.
//!
//! `/sse?topics=ticker.AAPL,ticker.MSFT[&throttle_ms=250][&heartbeat_ms=5000][&token=...]`
//! [`&last_event_id=...`] answers `text/event-stream` with the same messages a WebSocket gets
//! (see [`crate::session::sse`]). The query is checked exactly as a WebSocket subscribe is (it is
//! read into one): a bad one gets HTTP 400 with the error JSON naming the field, and
//! `Last-Event-ID` (or `last_event_id`) resumes every named topic as `since` would. Admission
//! (Origin, credential, connection limits) is WebSocket's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tickcast_bus::Subscriber;
use tickcast_core::protocol::{ProtocolErrorKind, SubscribeOptions};
use tickcast_core::{ClientRequest, ProtocolError, Topic};

use super::admit::admit;
use super::{json_response, Resp};
use crate::auth::credentials::percent_decode;
use crate::session::sse::cursor::Cursor;
use crate::session::sse::SseStream;
use crate::session::{subscribe, ShardCtx};
use crate::state::Wire;

/// A checked `/sse` query.
#[derive(Debug)]
pub(crate) struct SseQuery {
    topics: Vec<Topic>,
    options: SubscribeOptions,
    /// The id to resume from, not parsed yet (that needs the topic count).
    last_event_id: Option<String>,
}

/// Reads the query (and the `Last-Event-ID` header, which wins over `last_event_id`) into a
/// subscribe request, validated as one.
pub(crate) fn parse_query(
    query: &str,
    last_event_id: Option<&str>,
) -> Result<SseQuery, ProtocolError> {
    let bad = |field: &str, problem: &str| {
        ProtocolError::from(ProtocolErrorKind::InvalidField {
            field: field.into(),
            problem: problem.into(),
        })
    };
    let mut request = json!({"op": "subscribe"});
    let mut id = last_event_id.map(str::to_string);
    let mut topics = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(v) = percent_decode(v) else {
            return Err(bad(k, "has bad percent-encoding"));
        };
        match k {
            "topics" => {
                let list: Vec<Value> = v
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::from(t.trim()))
                    .collect();
                topics = Some(list);
            }
            "throttle_ms" | "heartbeat_ms" => {
                let ms: u64 = v
                    .parse()
                    .map_err(|_| bad(k, "must be a positive integer of milliseconds"))?;
                request[k] = Value::from(ms);
            }
            "last_event_id" if id.is_none() => id = Some(v),
            // The credential is the admission's; other parameters (cache busters) are ignored.
            _ => {}
        }
    }
    let Some(topics) = topics.filter(|t| !t.is_empty()) else {
        return Err(bad(
            "topics",
            "is missing: /sse?topics=ticker.AAPL,ticker.MSFT",
        ));
    };
    request["topics"] = Value::from(topics);
    let mut text = request.to_string().into_bytes();
    match ClientRequest::parse(&mut text)? {
        ClientRequest::Subscribe {
            topics, options, ..
        } => Ok(SseQuery {
            topics,
            options,
            last_event_id: id.filter(|i| !i.is_empty()),
        }),
        _ => Err(bad("topics", "must name topics")),
    }
}

/// An HTTP 400 (or `status`) carrying the protocol error's JSON.
fn refuse(ctx: &ShardCtx, status: StatusCode, e: &ProtocolError) -> Resp {
    ctx.state
        .metrics
        .client_errors
        .with_label_values(&[e.code()])
        .inc();
    json_response(status, e.to_frame().payload().to_vec())
}

/// Answers `GET /sse`.
pub(super) fn sse(ctx: &Rc<ShardCtx>, req: Request<Incoming>, peer: Option<IpAddr>) -> Resp {
    if ctx.state.is_draining() {
        return super::text(StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n");
    }
    let header_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let mut query = match parse_query(req.uri().query().unwrap_or(""), header_id) {
        Ok(q) => q,
        Err(e) => return refuse(ctx, StatusCode::BAD_REQUEST, &e),
    };
    let config = &ctx.state.config;
    // The server's bounds on intervals, checked here so a bad one is a 400, not an event.
    let entries = query
        .topics
        .iter()
        .map(Topic::as_str)
        .chain(query.options.patterns.iter().map(|p| p.as_str()));
    let checks = entries
        .map(|e| {
            (
                &config.throttle,
                query.options.throttle_for(e),
                "throttle_ms",
            )
        })
        .chain(std::iter::once((
            &config.heartbeats,
            query.options.heartbeat_ms,
            "heartbeat_ms",
        )));
    for (limits, ms, field) in checks {
        if let Err(kind) = subscribe::interval(limits, ms, field) {
            return refuse(ctx, StatusCode::BAD_REQUEST, &kind.into());
        }
    }
    if query.topics.len() > config.max_topics_per_connection {
        let kind = ProtocolErrorKind::TooManyTopics {
            limit: config.max_topics_per_connection,
            wanted: query.topics.len(),
        };
        ctx.state
            .metrics
            .limit_rejections
            .with_label_values(&["max_topics_per_connection"])
            .inc();
        return refuse(ctx, StatusCode::BAD_REQUEST, &kind.into());
    }
    let epoch = ctx.state.bus.epoch().clone();
    let cursor = match &query.last_event_id {
        None => Cursor::new(epoch, query.topics.len()),
        Some(id) => match Cursor::parse(id, query.topics.len()) {
            Ok(c) => c,
            Err(problem) => {
                let kind = ProtocolErrorKind::InvalidField {
                    field: "last_event_id".into(),
                    problem,
                };
                return refuse(ctx, StatusCode::BAD_REQUEST, &kind.into());
            }
        },
    };
    let (slot, auth) = match admit(ctx, &req, peer, Wire::Sse) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    // Named topics outside the credential's entitlements refuse the stream (a browser cannot
    // read an error event before it is open); a wildcard only ever brings allowed topics.
    if let Some(allowed) = &auth.entitlements {
        let refused: Vec<String> = query
            .topics
            .iter()
            .filter(|t| !allowed.allows(t.as_str()))
            .map(|t| t.as_str().to_string())
            .collect();
        if !refused.is_empty() {
            let kind = ProtocolErrorKind::Forbidden { topics: refused };
            return refuse(ctx, StatusCode::FORBIDDEN, &kind.into());
        }
    }
    query.options.since = cursor.since(&query.topics);
    // A cursor of another epoch resumes nothing: `since` says so topic by topic
    // (`epoch_changed`), and the stream's new ids carry the current epoch.
    let cursor = if cursor.epoch() == ctx.state.bus.epoch() {
        cursor
    } else {
        Cursor::new(ctx.state.bus.epoch().clone(), query.topics.len())
    };
    let sub = Subscriber::new(ctx.next_subscriber_id());
    let index: HashMap<_, _> = query
        .topics
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            ctx.state
                .bus
                .resolve(t, tickcast_bus::TopicOrigin::Subscriber)
                .ok()
                .map(|s| (s.id(), i))
        })
        .collect();
    let client = subscribe::Client {
        sub: &sub,
        entitlements: auth.entitlements.as_ref(),
    };
    subscribe::subscribe(ctx, &client, query.topics.clone(), None, &query.options);
    let stream = SseStream::new(ctx.clone(), sub, index, cursor, auth.expires_at, slot);
    let mut r = Response::new(Either::Right(Box::new(stream)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies that buffer responses (nginx) would hold events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_read_as_a_subscribe() {
        let q = parse_query(
            "topics=ticker.AAPL,ticker.*%40500ms&throttle_ms=250&heartbeat_ms=5000&token=x",
            None,
        )
        .unwrap();
        assert_eq!(q.topics, vec![Topic::new("ticker.AAPL").unwrap()]);
        assert_eq!(q.options.patterns[0].as_str(), "ticker.*");
        assert_eq!(q.options.throttle_for("ticker.*"), Some(500));
        assert_eq!(q.options.throttle_for("ticker.AAPL"), Some(250));
        assert_eq!(q.options.heartbeat_ms, Some(5000));
        assert_eq!(q.last_event_id, None);
        let q = parse_query("topics=a.b&last_event_id=e.5", Some("e.7")).unwrap();
        assert_eq!(q.last_event_id.as_deref(), Some("e.7"), "the header wins");
    }

    #[test]
    fn bad_queries_name_the_field() {
        for (query, field) in [
            ("", Some("topics")),
            ("topics=", Some("topics")),
            ("topics=a.b&throttle_ms=fast", Some("throttle_ms")),
            ("topics=a.b&heartbeat_ms=-1", Some("heartbeat_ms")),
            ("topics=a.b&throttle_ms=0", Some("throttle_ms")),
            ("topics=a.b%zz", Some("topics")),
            ("topics=a.b@5", Some("topics")),
            ("topics=not a topic", None),
        ] {
            let e = parse_query(query, None).unwrap_err();
            match (&e.kind, field) {
                (ProtocolErrorKind::InvalidField { field: f, .. }, Some(want)) => {
                    assert_eq!(f, want, "{query}")
                }
                (ProtocolErrorKind::InvalidTopic { .. }, None) => {}
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
