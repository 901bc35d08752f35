//! Subscribe and unsubscribe: checking a request's options and limits before anything changes,
//! then handing topics (by throttle) and wildcard patterns to the shard's router, and the ack.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tickcast_bus::{StreamOptions, Subscriber, TopicFilter, TopicOrigin};
use tickcast_core::protocol::{ProtocolErrorKind, RequestId, SubscribeOptions};
use tickcast_core::{ProtocolError, ServerReply, Topic, TopicPattern};

use super::request::{error_to, refuse_topic};
use super::ShardCtx;
use crate::auth::entitlements::Entitlements;
use crate::config::IntervalLimits;

/// Who asks, whatever the transport: its bus subscriber (whose priority lane gets the replies)
/// and what its credential allows.
pub(crate) struct Client<'a> {
    /// The subscriber the topics go to.
    pub sub: &'a Rc<Subscriber>,
    /// Topics it may subscribe to; `None` when authentication is off.
    pub entitlements: Option<&'a Entitlements>,
}

impl Client<'_> {
    fn reply(&self, frame: tickcast_core::Frame) {
        self.sub.queue.borrow_mut().push_control(frame);
        self.sub.wake();
    }
}

/// `ms` checked against `limits`, or the `invalid_field` error naming `field`.
pub(crate) fn interval(
    limits: &IntervalLimits,
    ms: Option<u64>,
    field: &str,
) -> Result<Option<Duration>, ProtocolErrorKind> {
    let Some(ms) = ms else { return Ok(None) };
    limits
        .interval(ms)
        .map(Some)
        .ok_or_else(|| ProtocolErrorKind::InvalidField {
            field: field.into(),
            problem: format!(
                "{ms} ms must be within {}..={} milliseconds",
                limits.min.as_millis(),
                limits.max.as_millis()
            ),
        })
}

/// Counts a refused limit and answers with `kind`.
fn over_limit(
    ctx: &ShardCtx,
    client: &Client<'_>,
    label: &str,
    kind: ProtocolErrorKind,
    id: Option<RequestId>,
) {
    ctx.state
        .metrics
        .limit_rejections
        .with_label_values(&[label])
        .inc();
    error_to(ctx, client.sub, ProtocolError { kind, id });
}

/// Answers a subscribe.
pub(crate) fn subscribe(
    ctx: &ShardCtx,
    client: &Client<'_>,
    mut topics: Vec<Topic>,
    id: Option<RequestId>,
    options: &SubscribeOptions,
) {
    let config = &ctx.state.config;
    let sub = client.sub;
    // Options are checked before anything changes, so a bad one leaves the session as it was.
    let heartbeat = match interval(&config.heartbeats, options.heartbeat_ms, "heartbeat_ms") {
        Ok(h) => h,
        Err(kind) => return error_to(ctx, client.sub, ProtocolError { kind, id }),
    };
    let mut throttles = BTreeMap::new();
    let entries = topics
        .iter()
        .map(Topic::as_str)
        .chain(options.patterns.iter().map(TopicPattern::as_str));
    for entry in entries {
        let ms = options.throttle_for(entry);
        let field = if options.throttle_suffixes.iter().any(|(e, _)| &**e == entry) {
            "topics"
        } else {
            "throttle_ms"
        };
        match interval(&config.throttle, ms, field) {
            Ok(t) => throttles.insert(entry.to_string(), t),
            Err(kind) => return error_to(ctx, client.sub, ProtocolError { kind, id }),
        };
    }
    let router = ctx.router.borrow();
    let held_patterns = router.pattern_count(sub);
    let new_patterns = options
        .patterns
        .iter()
        .filter(|p| !router.has_pattern(sub, p))
        .count();
    drop(router);
    let limit = config.max_patterns_per_connection;
    if held_patterns + new_patterns > limit {
        let kind = ProtocolErrorKind::TooManyPatterns {
            limit,
            wanted: held_patterns + new_patterns,
        };
        return over_limit(ctx, client, "max_patterns_per_connection", kind, id);
    }
    // Topics outside the credential's entitlements get `forbidden`; the rest go ahead. A pattern
    // is never refused as a whole: it only ever brings the topics the credential allows.
    if let Some(allowed) = &client.entitlements {
        let (granted, refused): (Vec<_>, Vec<_>) =
            topics.into_iter().partition(|t| allowed.allows(t.as_str()));
        topics = granted;
        if !refused.is_empty() {
            let kind = ProtocolErrorKind::Forbidden {
                topics: refused.iter().map(|t| t.as_str().to_string()).collect(),
            };
            error_to(
                ctx,
                client.sub,
                ProtocolError {
                    kind,
                    id: id.clone(),
                },
            );
        }
        if topics.is_empty() && options.patterns.is_empty() {
            return;
        }
    }
    let limit = config.max_topics_per_connection;
    let wanted = sub.topic_count() + topics.iter().filter(|t| !sub.is_subscribed(t)).count();
    if wanted > limit {
        let kind = ProtocolErrorKind::TooManyTopics { limit, wanted };
        return over_limit(ctx, client, "max_topics_per_connection", kind, id);
    }
    // Resolve (create) every topic first, so a refusal leaves nothing half-subscribed. A topic no
    // feed has published yet is created as "requested": it counts against `max_requested_topics`,
    // never a feed's room, and is reaped once nobody holds it.
    let mut pending = Vec::new();
    for topic in &topics {
        match ctx.state.bus.resolve(topic, TopicOrigin::Subscriber) {
            Ok(state) => {
                if !state.has_data() {
                    pending.push(topic.clone());
                }
            }
            Err(e) => return refuse_topic(ctx, client.sub, e, id),
        }
    }
    // Subscribing queues each topic's opening (recovered ticks or the snapshot) on the data lane;
    // the ack, with the recovery outcomes, goes on the priority lane right after, in the same
    // turn: it still leaves first. Topics go to the router in groups of one throttle each.
    let now = Instant::now();
    let throttle_of = |entry: &str| throttles.get(entry).copied().flatten();
    let mut groups: Vec<(Option<Duration>, Vec<Topic>)> = Vec::new();
    for topic in &topics {
        let t = throttle_of(topic.as_str());
        match groups.iter_mut().find(|(g, _)| *g == t) {
            Some((_, list)) => list.push(topic.clone()),
            None => groups.push((t, vec![topic.clone()])),
        }
    }
    let mut recovery = Vec::new();
    let mut refused = None;
    let mut router = ctx.router.borrow_mut();
    for (throttle, group) in &groups {
        let opts = StreamOptions {
            since: &options.since,
            heartbeat,
            throttle: *throttle,
        };
        match router.subscribe(sub, group, &opts, now) {
            Ok(r) => recovery.extend(r),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let mut epochs_of: Vec<Topic> = topics.clone();
    epochs_of.extend(
        options
            .since
            .iter()
            .filter(|s| !topics.contains(&s.topic))
            .map(|s| s.topic.clone()),
    );
    if refused.is_none() && !options.patterns.is_empty() {
        let allow: Option<TopicFilter> = client.entitlements.cloned().map(|e| {
            let f: TopicFilter = Rc::new(move |t: &Topic| e.allows(t.as_str()));
            f
        });
        // A client resuming a wildcard names the topics it had in `since` (the parser checked
        // that a pattern of the request matches each): they are opened from there first, so the
        // patterns below find them held instead of opening them with a snapshot.
        for s in options.since.iter().filter(|s| !topics.contains(&s.topic)) {
            let Some(pattern) = options.patterns.iter().find(|p| p.matches(&s.topic)) else {
                continue;
            };
            if allow.as_ref().is_some_and(|allow| !allow(&s.topic))
                || sub.topic_count() >= config.max_topics_per_connection
            {
                continue;
            }
            let opts = StreamOptions {
                since: std::slice::from_ref(s),
                heartbeat,
                throttle: throttle_of(pattern.as_str()),
            };
            recovery.extend(router.subscribe_matched(sub, &s.topic, &opts, now));
        }
        for pattern in &options.patterns {
            let opts = StreamOptions {
                since: &[],
                heartbeat,
                throttle: throttle_of(pattern.as_str()),
            };
            let outcome = router.subscribe_pattern(
                sub,
                pattern,
                &opts,
                allow.clone(),
                config.max_topics_per_connection,
                now,
            );
            // What it left out is counted by the router (`tickcast_wildcard_refusals_total`);
            // the client was told of the limit with `too_many_topics`, and never of forbidden
            // topics, whose names it may not learn.
            epochs_of.extend(outcome.matched);
        }
    }
    drop(router);
    if heartbeat.is_some() {
        ctx.heartbeats_asked.notify_one();
    }
    let epochs: Vec<_> = epochs_of
        .iter()
        .filter_map(|t| ctx.state.bus.get(t.as_str()))
        .map(|s| (s.topic().clone(), s.epoch()))
        .collect();
    ctx.state.metrics.recovered(&recovery);
    client.reply(
        ServerReply::Subscribed {
            topics: &topics,
            patterns: &options.patterns,
            pending: &pending,
            epochs: &epochs,
            recovery: &recovery,
            id: id.as_ref(),
        }
        .to_frame(),
    );
    if let Some(e) = refused {
        refuse_topic(ctx, client.sub, e, id);
    }
}

/// Answers an unsubscribe: named topics, and patterns with every topic only they brought.
pub(crate) fn unsubscribe(
    ctx: &ShardCtx,
    client: &Client<'_>,
    topics: &[Topic],
    patterns: &[TopicPattern],
    id: Option<RequestId>,
) {
    let mut router = ctx.router.borrow_mut();
    router.unsubscribe(client.sub, topics);
    for p in patterns {
        router.unsubscribe_pattern(client.sub, p);
    }
    drop(router);
    client.reply(
        ServerReply::Unsubscribed {
            topics,
            patterns,
            id: id.as_ref(),
        }
        .to_frame(),
    );
}
