//! Answering a client's protocol v1 requests (subscribe, unsubscribe, ping), with the inbound
//! message rate limit and the error replies.

use std::time::Instant;

use tickcast_bus::{BusError, TopicOrigin};
use tickcast_core::protocol::{ProtocolErrorKind, RequestId};
use tickcast_core::{ClientRequest, CloseCode, ProtocolError, ServerReply};

use super::{Session, ShardCtx};
use crate::limits::Verdict;
use crate::metrics::CloseReason;

/// Takes a token for one client message; false (after answering `rate_limited` or queueing close
/// 1008) when the message must not be served.
pub(super) fn within_rate(ctx: &ShardCtx, session: &Session) -> bool {
    let limit = &ctx.state.config.rate_limit;
    let mut bucket = session.rate.get();
    let verdict = bucket.take(limit, Instant::now());
    session.rate.set(bucket);
    if verdict == Verdict::Allow {
        return true;
    }
    ctx.state
        .metrics
        .limit_rejections
        .with_label_values(&["message_rate"])
        .inc();
    match verdict {
        Verdict::Close => session.close(
            CloseReason::RateLimited,
            CloseCode::Policy,
            "message rate limit exceeded",
        ),
        _ => {
            let kind = ProtocolErrorKind::RateLimited {
                per_second: limit.per_second,
            };
            reply_error(ctx, session, kind.into());
        }
    }
    false
}

/// A topic the bus would not create: counted under the limit that refused it, answered with
/// `topic_limit`.
fn refuse_topic(ctx: &ShardCtx, session: &Session, e: BusError, id: Option<RequestId>) {
    let BusError::TopicLimit {
        limit,
        topic,
        origin,
    } = e;
    let label = match origin {
        TopicOrigin::Feed => "max_topics",
        TopicOrigin::Subscriber => "max_requested_topics",
    };
    ctx.state
        .metrics
        .limit_rejections
        .with_label_values(&[label])
        .inc();
    let kind = ProtocolErrorKind::TopicLimit {
        limit,
        topic: topic.to_string(),
    };
    reply_error(ctx, session, ProtocolError { kind, id });
}

pub(super) fn reply_error(ctx: &ShardCtx, session: &Session, err: ProtocolError) {
    ctx.state
        .metrics
        .client_errors
        .with_label_values(&[err.code()])
        .inc();
    session.reply(err.to_frame());
}

/// Answers one text message.
pub(super) fn handle_request(ctx: &ShardCtx, session: &Session, buf: &mut [u8]) {
    let request = match ClientRequest::parse(buf) {
        Ok(r) => r,
        Err(e) => return reply_error(ctx, session, e),
    };
    let sub = &session.sub;
    match request {
        ClientRequest::Subscribe {
            mut topics,
            id,
            options,
        } => {
            // Checked before anything changes, so a bad option leaves the session as it was.
            let heartbeat = match options.heartbeat_ms {
                None => None,
                Some(ms) => match ctx.state.config.heartbeats.interval(ms) {
                    Some(every) => Some(every),
                    None => {
                        let h = ctx.state.config.heartbeats;
                        let kind = ProtocolErrorKind::InvalidField {
                            field: "heartbeat_ms".into(),
                            problem: format!(
                                "must be within {}..={} milliseconds",
                                h.min.as_millis(),
                                h.max.as_millis()
                            ),
                        };
                        return reply_error(ctx, session, ProtocolError { kind, id });
                    }
                },
            };
            // Topics outside the credential's entitlements get `forbidden`; the rest go ahead.
            if let Some(allowed) = &session.entitlements {
                let (granted, refused): (Vec<_>, Vec<_>) =
                    topics.into_iter().partition(|t| allowed.allows(t.as_str()));
                topics = granted;
                if !refused.is_empty() {
                    let kind = ProtocolErrorKind::Forbidden {
                        topics: refused.iter().map(|t| t.as_str().to_string()).collect(),
                    };
                    reply_error(
                        ctx,
                        session,
                        ProtocolError {
                            kind,
                            id: id.clone(),
                        },
                    );
                }
                if topics.is_empty() {
                    return;
                }
            }
            let limit = ctx.state.config.max_topics_per_connection;
            let wanted =
                sub.topic_count() + topics.iter().filter(|t| !sub.is_subscribed(t)).count();
            if wanted > limit {
                ctx.state
                    .metrics
                    .limit_rejections
                    .with_label_values(&["max_topics_per_connection"])
                    .inc();
                let kind = ProtocolErrorKind::TooManyTopics { limit, wanted };
                return reply_error(ctx, session, ProtocolError { kind, id });
            }
            // Resolve (create) every topic first, so a refusal leaves nothing half-subscribed. A
            // topic no feed has published yet is created as "requested": it counts against
            // `max_requested_topics`, never a feed's room, and is reaped once nobody holds it.
            let mut pending = Vec::new();
            for topic in &topics {
                match ctx.state.bus.resolve(topic, TopicOrigin::Subscriber) {
                    Ok(state) => {
                        if !state.has_data() {
                            pending.push(topic.clone());
                        }
                    }
                    Err(e) => return refuse_topic(ctx, session, e, id),
                }
            }
            // Subscribing queues each topic's opening (recovered ticks or the snapshot) on the data
            // lane; the ack, with the recovery outcomes, goes on the priority lane right after, in
            // the same turn: it still leaves first.
            let subscribed = ctx.router.borrow_mut().subscribe(
                sub,
                &topics,
                &options.since,
                heartbeat,
                Instant::now(),
            );
            if heartbeat.is_some() {
                ctx.heartbeats_asked.notify_one();
            }
            let epochs: Vec<_> = topics
                .iter()
                .filter_map(|t| ctx.state.bus.get(t.as_str()))
                .map(|s| (s.topic().clone(), s.epoch().clone()))
                .collect();
            let (recovery, refused) = match subscribed {
                Ok(r) => (r, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            ctx.state.metrics.recovered(&recovery);
            session.reply(
                ServerReply::Subscribed {
                    topics: &topics,
                    pending: &pending,
                    epochs: &epochs,
                    recovery: &recovery,
                    id: id.as_ref(),
                }
                .to_frame(),
            );
            if let Some(e) = refused {
                refuse_topic(ctx, session, e, id);
            }
        }
        ClientRequest::Unsubscribe { topics, id } => {
            ctx.router.borrow_mut().unsubscribe(sub, &topics);
            session.reply(
                ServerReply::Unsubscribed {
                    topics: &topics,
                    id: id.as_ref(),
                }
                .to_frame(),
            );
        }
        ClientRequest::Ping { id } => {
            session.reply(ServerReply::Pong { id: id.as_ref() }.to_frame())
        }
    }
}
