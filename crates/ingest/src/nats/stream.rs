//! What the ingest tier keeps in JetStream, read and written by the sink: the stream's config (one
//! message per subject, republished under the live prefix), the history stream's (what was
//! republished, kept for a while), the epoch record, the leader's last heartbeat, and every topic's
//! last tick (to resume seqs from).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, Republish, StorageType,
};
use async_nats::jetstream::Context;
use bytes::Bytes;
use tickcast_bus::{Bus, TopicState};
use tickcast_core::{Epoch, Topic};

use super::sink::{NatsSinkConfig, StreamStorage};
use super::{
    carries_books, decode, epoch_subject, history_stream, is_reserved_subject, leader_subject,
    live_prefix, publish_decoded, resync_topic, topic_of_subject, NatsError, ReadFrom,
    StreamReader,
};
use crate::parse::TickParser;
use crate::publisher::Publisher;
use crate::stats::FeedStats;

pub(super) fn err(config: &NatsSinkConfig, e: &dyn std::fmt::Display) -> NatsError {
    NatsError::Stream {
        stream: config.stream.clone(),
        error: e.to_string(),
    }
}

fn storage(config: &NatsSinkConfig) -> StorageType {
    match config.storage {
        StreamStorage::File => StorageType::File,
        StreamStorage::Memory => StorageType::Memory,
    }
}

/// The stream's config: `<prefix>.>`, one message per subject, republished under the live prefix.
pub(super) fn stream_config(config: &NatsSinkConfig) -> StreamConfig {
    StreamConfig {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        // The latest tick of a topic is its snapshot and where a new leader resumes its seq. Older
        // ones live in the history stream: a per-subject limit above 1 makes nats-server 2.9
        // search for each subject's oldest message on every append (measured: a memory stream
        // keeping 100 per subject saturated nats-server at 20k ticks/s).
        max_messages_per_subject: 1,
        storage: storage(config),
        republish: Some(Republish {
            source: format!("{}.>", config.subject_prefix),
            destination: format!("{}.>", live_prefix(&config.subject_prefix)),
            headers_only: false,
        }),
        ..Default::default()
    }
}

/// The history stream's config, if there is one: it captures what the stream republishes
/// (`<prefix>_live.>`, so only appends the stream accepted) and keeps it for `history_age` or up to
/// `history_max_bytes`, dropping the oldest first, which costs nats-server no per-subject search.
pub(super) fn history_config(config: &NatsSinkConfig) -> Option<StreamConfig> {
    (!config.history_age.is_zero()).then(|| StreamConfig {
        name: history_stream(&config.stream),
        subjects: vec![format!("{}.>", live_prefix(&config.subject_prefix))],
        max_age: config.history_age,
        max_bytes: i64::try_from(config.history_max_bytes).unwrap_or(i64::MAX),
        discard: DiscardPolicy::Old,
        storage: storage(config),
        ..Default::default()
    })
}

/// Creates the stream and the history stream, or keeps the ones that exist (adding the republish
/// to a stream made before it had one, and setting the history's limits to the configured ones).
pub(super) async fn ensure_stream(js: &Context, config: &NatsSinkConfig) -> Result<(), NatsError> {
    let wanted = stream_config(config);
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| err(config, &e))?;
    if stream.cached_info().config.republish != wanted.republish {
        let mut updated = stream.cached_info().config.clone();
        updated.republish = wanted.republish;
        js.update_stream(updated)
            .await
            .map_err(|e| err(config, &e))?;
        tracing::info!(stream = %config.stream, "stream now republishes what it stores (gateways read that)");
    }
    let _ = stream.info().await;
    if let Some(wanted) = history_config(config) {
        let history = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| err(config, &e))?;
        let current = &history.cached_info().config;
        if current.max_age != wanted.max_age || current.max_bytes != wanted.max_bytes {
            let mut updated = current.clone();
            updated.max_age = wanted.max_age;
            updated.max_bytes = wanted.max_bytes;
            js.update_stream(updated)
                .await
                .map_err(|e| err(config, &e))?;
            tracing::info!(stream = %wanted.name, "history stream limits updated");
        }
    }
    Ok(())
}

/// A new epoch: from the wall clock and the process id, so two starts differ.
pub(super) fn fresh_epoch() -> Epoch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    Epoch::from_seed(nanos ^ (u64::from(std::process::id()) << 40))
}

/// The epoch the stream holds (the last message of the reserved subject), if any.
pub(super) async fn stored_epoch(
    js: &Context,
    config: &NatsSinkConfig,
) -> Result<Option<Epoch>, NatsError> {
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| err(config, &e))?;
    let subject = epoch_subject(&config.subject_prefix);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(msg) => {
            let text = std::str::from_utf8(&msg.payload).map_err(|e| err(config, &e))?;
            Epoch::new(text.trim())
                .map(Some)
                .map_err(|e| err(config, &format_args!("{subject}: {e}")))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(err(config, &e)),
    }
}

/// Stores `epoch` as the first message of the reserved subject, waiting for JetStream's ack;
/// `false` if the subject already had one (another node stored its epoch first).
pub(super) async fn store_epoch(
    js: &Context,
    config: &NatsSinkConfig,
    epoch: &Epoch,
) -> Result<bool, NatsError> {
    let body = Bytes::copy_from_slice(epoch.as_str().as_bytes());
    let publish = Publish::build()
        .payload(body)
        .expected_last_subject_sequence(0);
    let ack = js
        .send_publish(epoch_subject(&config.subject_prefix), publish)
        .await
        .map_err(|e| err(config, &e))?
        .await;
    match ack {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
        Err(e) => Err(err(config, &e)),
    }
}

/// When the leader was last heard, from the heartbeat the stream holds: a lease that lapsed long
/// ago (the tier was down) is taken over at once, a fresh one is waited out.
/// Also returns the heartbeat's stream sequence (0 if none): a clock-free way to tell later
/// whether anyone renewed since.
pub(super) async fn last_heartbeat(
    js: &Context,
    config: &NatsSinkConfig,
) -> Result<(Instant, u64), NatsError> {
    let now = Instant::now();
    let lapsed = now.checked_sub(config.lease.lease).unwrap_or(now);
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| err(config, &e))?;
    match stream
        .get_last_raw_message_by_subject(&leader_subject(&config.subject_prefix))
        .await
    {
        Ok(msg) => {
            let stored = msg.time.unix_timestamp_nanos();
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as i128;
            // The stored time is NATS's clock: a skew only delays or hastens one attempt, which
            // the conditional append keeps safe either way.
            let age = Duration::from_nanos((wall - stored).clamp(0, u64::MAX as i128) as u64);
            Ok((
                now.checked_sub(age).unwrap_or(lapsed).max(lapsed),
                msg.sequence,
            ))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((lapsed, 0)),
        Err(e) => Err(err(config, &e)),
    }
}

/// Loads the stream's last message of every topic (quote or trade) into `bus` (its cache and seq
/// counter); returns the topics it found.
pub(super) async fn resume(
    js: &Context,
    config: &NatsSinkConfig,
    bus: &Arc<Bus>,
    stats: &Arc<FeedStats>,
) -> Result<Vec<Arc<TopicState>>, NatsError> {
    let filter = format!("{}.>", config.subject_prefix);
    let mut last =
        StreamReader::open(js, &config.stream, &filter, ReadFrom::LastPerSubject).await?;
    let mut publisher = Publisher::new(bus.clone(), stats.clone());
    let mut parser = TickParser::default();
    let mut scratch = Vec::new();
    let mut found = Vec::new();
    while let Some((subject, body, _)) = last.next().await.map_err(|e| err(config, &e))? {
        if is_reserved_subject(&config.subject_prefix, &subject) {
            continue;
        }
        let Some(name) = topic_of_subject(&config.subject_prefix, &subject) else {
            continue;
        };
        if resync_topic(name).is_some() {
            continue; // a book's snapshot: its seq is its book's, already read from the book's subject
        }
        scratch.clear();
        scratch.extend_from_slice(&body);
        let Ok(msg) = decode(&mut parser, &subject, name, &mut scratch) else {
            continue;
        };
        let Some(state) = Topic::new(name).ok().and_then(|t| publisher.topic(&t).ok()) else {
            continue;
        };
        if carries_books(name) {
            // This node's book is its own (built from its feeds): only the seq goes on from the
            // old leader's, and the book from the snapshot it publishes once it leads.
            state.observe_seq(msg.seq);
        } else {
            // A quote, trade or candle: its seq is where this node's seqs go on, and the message
            // is the topic's latest, as on the old leader.
            publish_decoded(&mut publisher, &mut bus.batch(), &state, msg, &body);
        }
        found.push(state);
    }
    Ok(found)
}
