//! Answering a client's requests (subscribe and unsubscribe in [`subscribe`], ping here), with
//! the inbound message rate limit and the error replies.

use std::time::Instant;

use tickcast_bus::{BusError, Subscriber, TopicOrigin};
use tickcast_core::protocol::{ProtocolErrorKind, RequestId};
use tickcast_core::{ClientRequest, CloseCode, ProtocolError, ServerReply, TsMicros};

use super::{subscribe, Session, ShardCtx};
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
pub(super) fn refuse_topic(ctx: &ShardCtx, sub: &Subscriber, e: BusError, id: Option<RequestId>) {
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
    error_to(ctx, sub, ProtocolError { kind, id });
}

pub(super) fn reply_error(ctx: &ShardCtx, session: &Session, err: ProtocolError) {
    error_to(ctx, &session.sub, err);
}

/// Counts `err` by code and queues it to `sub` on the priority lane.
pub(super) fn error_to(ctx: &ShardCtx, sub: &Subscriber, err: ProtocolError) {
    ctx.state
        .metrics
        .client_errors
        .with_label_values(&[err.code()])
        .inc();
    sub.queue.borrow_mut().push_control(err.to_frame());
    sub.wake();
}

/// Answers one text message.
pub(super) fn handle_request(ctx: &ShardCtx, session: &Session, buf: &mut [u8]) {
    let request = match ClientRequest::parse(buf) {
        Ok(r) => r,
        Err(e) => return reply_error(ctx, session, e),
    };
    match request {
        ClientRequest::Subscribe {
            topics,
            id,
            options,
        } => subscribe::subscribe(ctx, &session.client(), topics, id, &options),
        ClientRequest::Unsubscribe {
            topics,
            patterns,
            id,
        } => subscribe::unsubscribe(ctx, &session.client(), &topics, &patterns, id),
        ClientRequest::Ping { id } => session.reply(
            ServerReply::Pong {
                ts: TsMicros::now(),
                id: id.as_ref(),
            }
            .to_frame(),
        ),
    }
}
