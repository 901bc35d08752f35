//! Scale-out over NATS: one ingest tier, many gateway nodes, the same seq everywhere.
//!
//! An ingest node runs its feeds as usual and the [`sink`]: every tick its bus accepts is published
//! to the NATS subject `<prefix>.<topic>` with the encoded tick JSON as the body (seq and ts
//! included), and a JetStream stream capturing `<prefix>.>` with one message per subject keeps the
//! latest tick of every topic (and, beside each book's deltas, the leader's latest snapshot of that
//! book); an optional second stream keeps every tick for a while (the history). Gateway
//! nodes run the [`feed`]: it subscribes to those subjects, fills its history and last-value cache
//! from the two streams on every (re)connect, and publishes into the local bus with
//! the ingest node's seq and ts unchanged, so a client that moves to another gateway sees one
//! consistent sequence.
//!
//! Modules: [`sink`] (the ingest node's side: config, tap, connect), `forward` (its task: leadership
//! and appends), `snapshots` (when it appends a book's snapshot beside its deltas), [`election`] (when to take over, as a pure function), `stream` (what the streams
//! hold: config, epoch, heartbeats, last ticks), [`feed`] (the gateway's side). Several ingest
//! nodes may run at once; one leads (see [`election`]), and gateways read what the stream
//! republishes, so only the leader's accepted appends reach them.

pub mod election;
pub mod feed;
mod forward;
pub mod sink;
mod snapshots;
mod stream;

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use simd_json::prelude::*;
use tickcast_bus::{PublishBatch, TopicState, Upstream};
use tickcast_core::{Frame, Seq, TopicClass, TsMicros};

use crate::market_line::BookLine;
use crate::parse::{Line, TickParser};
use crate::publisher::{Publisher, Quote};
use crate::reject::Reject;

/// NATS server when none is configured.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// Time allowed to connect when none is configured (the sink at startup, the feed per attempt).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest connect timeout accepted.
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
/// Subject prefix when none is configured: `tickcast.ticker.AAPL`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "tickcast";
/// JetStream stream holding the last tick per subject when none is configured.
pub const DEFAULT_STREAM: &str = "TICKCAST";
/// Longest wait for one message while reading a stream's snapshot; a stalled read gives
/// up (live data keeps flowing) rather than holding readiness back forever.
const WARM_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the NATS side could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {error}")]
    Connect {
        /// The configured URL.
        url: String,
        /// The client's message.
        error: String,
    },
    /// The JetStream stream could not be created or read.
    #[error("NATS JetStream stream {stream}: {error}")]
    Stream {
        /// The stream name.
        stream: String,
        /// The client's message.
        error: String,
    },
    /// A bus tap is already installed (one sink per server).
    #[error("a bus tap is already installed; only one NATS sink per server")]
    TapInUse,
}

/// What a receiver needs of one of the ingest tier's messages: its seq and ts, and the quote when
/// it is one (a quote is re-encoded; anything else passes on as the body it came in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decoded {
    pub seq: Seq,
    /// [`TsMicros::UNMEASURED`] for a message without one (a candle carries `start`).
    pub ts: TsMicros,
    pub quote: Option<Quote>,
}

/// The topic a subject under `prefix` carries (`tickcast.ticker.A` → `ticker.A`).
pub(crate) fn topic_of_subject<'s>(prefix: &str, subject: &'s str) -> Option<&'s str> {
    subject
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('.'))
}

/// Whether messages of `topic` are quotes (decoded and re-encoded by the receiver) rather than
/// book messages (applied to the receiver's copy of the book) or messages passed through as they
/// are (trades, candles).
pub(crate) fn carries_quotes(topic: &str) -> bool {
    let channel = channel_of(topic);
    TopicClass::of_channel(channel) == TopicClass::Latest && channel != "bar"
}

/// Whether `topic` is an order book's.
pub(crate) fn carries_books(topic: &str) -> bool {
    TopicClass::of_channel(channel_of(topic)) == TopicClass::Book
}

fn channel_of(topic: &str) -> &str {
    topic.split_once('.').map_or(topic, |(c, _)| c)
}

/// A `book` message of the ingest node, as a gateway applies it to its own copy of the book.
pub(crate) struct DecodedBook<'a> {
    pub line: BookLine<'a>,
    pub upstream: Upstream,
    /// [`TsMicros::UNMEASURED`] when the message has none.
    pub ts: TsMicros,
}

/// Decodes a `book` message of `topic` (a snapshot or delta under the `book.*` subject, or, with
/// `resync`, the periodic snapshot under the [`snapshot_subject`]).
pub(crate) fn decode_book<'a>(
    parser: &mut TickParser,
    subject: &str,
    topic: &str,
    resync: bool,
    payload: &'a mut [u8],
) -> Result<DecodedBook<'a>, Reject> {
    let Line::Book(line) = parser.parse_line(payload)? else {
        return Err(Reject::Unsupported(
            "a book subject carries book messages only",
        ));
    };
    if line.topic != topic {
        return Err(Reject::BadTopic(format!(
            "subject {:?} does not carry topic {:?}",
            subject.chars().take(80).collect::<String>(),
            line.topic
        )));
    }
    if resync && !line.snapshot {
        return Err(Reject::Unsupported(
            "a resync subject carries snapshots only",
        ));
    }
    let seq = line.upstream.seq.ok_or(Reject::MissingField("seq"))?;
    let upstream = Upstream {
        seq: Seq(seq),
        checksum: line.upstream.checksum,
        depth: line.upstream.depth,
        resync,
    };
    let ts = line.ts.map_or(TsMicros::UNMEASURED, TsMicros);
    Ok(DecodedBook { line, upstream, ts })
}

/// Decodes a NATS message body of `subject`, whose topic is `topic`, and checks that the body
/// names the same topic: the subject is the routing key, so a body naming another topic is refused
/// rather than filed elsewhere. `payload` is a scratch copy of the body (parsing rewrites it).
pub(crate) fn decode(
    parser: &mut TickParser,
    subject: &str,
    topic: &str,
    payload: &mut [u8],
) -> Result<Decoded, Reject> {
    let wrong_topic = |named: &str| {
        Reject::BadTopic(format!(
            "subject {:?} does not carry topic {:?}",
            subject.chars().take(80).collect::<String>(),
            named
        ))
    };
    if carries_quotes(topic) {
        let line = parser.parse(payload)?;
        let seq = line.seq.ok_or(Reject::MissingField("seq"))?;
        if seq == 0 {
            return Err(Reject::BadNumber("seq"));
        }
        let ts = line.ts.ok_or(Reject::MissingField("ts"))?;
        if line.topic != topic {
            return Err(wrong_topic(&line.topic));
        }
        return Ok(Decoded {
            seq: Seq(seq),
            ts: TsMicros(ts),
            quote: Some(line.quote),
        });
    }
    // A trade or candle: only its topic, seq and ts are read.
    let v = simd_json::to_borrowed_value(payload).map_err(|e| Reject::BadJson(e.to_string()))?;
    let named = v
        .get("topic")
        .and_then(|t| t.as_str())
        .ok_or(Reject::MissingField("topic"))?;
    if named != topic {
        return Err(wrong_topic(named));
    }
    let seq = v
        .get("seq")
        .ok_or(Reject::MissingField("seq"))?
        .as_u64()
        .filter(|s| *s > 0)
        .ok_or(Reject::BadNumber("seq"))?;
    let ts = match v.get("ts") {
        None => TsMicros::UNMEASURED,
        Some(t) => TsMicros(t.as_u64().ok_or(Reject::BadNumber("ts"))?),
    };
    Ok(Decoded {
        seq: Seq(seq),
        ts,
        quote: None,
    })
}

/// Publishes a decoded message on `topic` under its upstream seq: a quote re-encoded, anything else
/// as `body`, the bytes the ingest node encoded.
pub(crate) fn publish_decoded(
    publisher: &mut Publisher,
    batch: &mut PublishBatch<'_>,
    topic: &TopicState,
    msg: Decoded,
    body: &[u8],
) {
    match msg.quote {
        Some(quote) => publisher.publish_assigned(batch, topic, msg.seq, msg.ts, quote),
        None => {
            topic.observe_seq(msg.seq);
            batch.publish(topic, msg.seq, msg.ts, Frame::text(body));
        }
    }
}

/// The NATS header naming the epoch of the seq a message carries.
pub const EPOCH_HEADER: &str = "Tickcast-Epoch";
/// Last token of the reserved subject holding the epoch in the stream: no topic can map to it (a
/// topic always has a `.`, so its subject has at least two tokens after the prefix).
const EPOCH_TOKEN: &str = "_epoch";

/// First token after the prefix of the subjects the leader's periodic book snapshots go to:
/// `<prefix>._snap.book.AAPL` (reserved: no topic starts with `_`).
const SNAPSHOT_TOKEN: &str = "_snap";

/// Last token of the reserved subject the leader's heartbeats (its lease) go to.
const LEADER_TOKEN: &str = "_leader";
/// The NATS header naming the leader's term on its heartbeats (see [`election`]).
pub const TERM_HEADER: &str = "Tickcast-Term";

/// The reserved subject `<prefix>._epoch` whose last message in the stream is the epoch.
pub(crate) fn epoch_subject(prefix: &str) -> String {
    format!("{prefix}.{EPOCH_TOKEN}")
}

/// The reserved subject `<prefix>._leader` the leader's heartbeats go to.
pub(crate) fn leader_subject(prefix: &str) -> String {
    format!("{prefix}.{LEADER_TOKEN}")
}

/// The prefix the stream republishes every message it stored under: `tickcast.ticker.AAPL` is
/// delivered live as `tickcast_live.ticker.AAPL`. Gateways subscribe there, so they see exactly
/// what the stream accepted, in its order: a deposed leader's refused appends never reach them.
pub fn live_prefix(prefix: &str) -> String {
    format!("{prefix}_live")
}

/// `subject` (under `prefix`) as the stream republishes it: `tickcast.ticker.>` →
/// `tickcast_live.ticker.>`. `subject` must start with `prefix` (feed configs are checked for it).
pub(crate) fn live_subject(prefix: &str, subject: &str) -> String {
    format!(
        "{}{}",
        live_prefix(prefix),
        subject.get(prefix.len()..).unwrap_or_default()
    )
}

/// The history stream kept beside `stream`: every tick the stream republished, for a while.
pub fn history_stream(stream: &str) -> String {
    format!("{stream}_HISTORY")
}

/// Whether `subject` is the reserved epoch subject under `prefix` (never a topic).
pub(crate) fn is_epoch_subject(prefix: &str, subject: &str) -> bool {
    reserved_token(prefix, subject) == Some(EPOCH_TOKEN)
}

/// Whether `subject` is the reserved leader subject under `prefix` (never a topic).
pub(crate) fn is_leader_subject(prefix: &str, subject: &str) -> bool {
    reserved_token(prefix, subject) == Some(LEADER_TOKEN)
}

/// Whether `subject` is one of the reserved subjects under `prefix` (never a topic).
pub(crate) fn is_reserved_subject(prefix: &str, subject: &str) -> bool {
    is_epoch_subject(prefix, subject) || is_leader_subject(prefix, subject)
}

fn reserved_token<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    topic_of_subject(prefix, subject)
}

/// The subject of the leader's periodic snapshots of the book of `topic`: a gateway whose copy
/// lost sync (or that has none yet) takes one; the stream keeps the latest per book.
pub(crate) fn snapshot_subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{SNAPSHOT_TOKEN}.{topic}")
}

/// The book topic a topic-like name under the prefix resyncs (`_snap.book.AAPL` → `book.AAPL`),
/// if it is a snapshot subject's.
pub(crate) fn resync_topic(name: &str) -> Option<&str> {
    name.strip_prefix(SNAPSHOT_TOKEN)?.strip_prefix('.')
}

/// The `Tickcast-Epoch` header of a message, if it has one.
pub(crate) fn epoch_of(headers: Option<&async_nats::HeaderMap>) -> Option<&str> {
    headers
        .and_then(|h| h.get(EPOCH_HEADER))
        .map(|v| v.as_str())
}

/// The subject ticks of `topic` go to.
pub(crate) fn subject_of(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

/// Checks a subject prefix: one or more NATS tokens, no wildcards or spaces.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b'>'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} must be dot-separated tokens without wildcards or spaces"
        ))
    }
}

/// Checks a JetStream stream name.
pub(crate) fn validate_stream(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'))
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be printable without . * > / \\ or spaces"
        ))
    }
}

/// Checks the sink's subject prefix and stream name as configured; the error starts with the key
/// at fault (`subject_prefix` or `stream`). The NATS feed checks its own with the same rules.
pub fn validate_names(subject_prefix: &str, stream: &str) -> Result<(), String> {
    validate_prefix(subject_prefix).map_err(|e| format!("subject_prefix {e}"))?;
    validate_stream(stream).map_err(|e| format!("stream {e}"))
}

/// Where a [`StreamReader`] starts in a JetStream stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFrom {
    /// Only the last message of each subject (an ingest node resuming its seqs).
    LastPerSubject,
    /// The recent messages, oldest first: none stored longer ago than `within` (`None` = no age
    /// limit), and no more than `per_subject` times the stream's subject count, the most a reader
    /// keeping `per_subject` per subject can use (a gateway filling its history).
    Recent {
        within: Option<Duration>,
        per_subject: u64,
    },
}

impl ReadFrom {
    fn policy(self) -> DeliverPolicy {
        match self {
            ReadFrom::LastPerSubject => DeliverPolicy::LastPerSubject,
            ReadFrom::Recent { within: None, .. } => DeliverPolicy::All,
            ReadFrom::Recent {
                within: Some(window),
                ..
            } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let start = now.saturating_sub(window).as_nanos() as i128;
                match time::OffsetDateTime::from_unix_timestamp_nanos(start) {
                    Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                    Err(_) => DeliverPolicy::All,
                }
            }
        }
    }
}

/// The first sequence of the last `cap` messages of a stream whose last is `last`.
fn last_n_start(last: u64, cap: u64) -> u64 {
    last.saturating_sub(cap.saturating_sub(1)).max(1)
}

/// Messages of a JetStream stream matching a filter, read once in stream order: the snapshot size
/// is taken when the consumer is created and reading stops there, so a busy stream cannot keep the
/// reader going forever (newer messages arrive live anyway).
pub(crate) struct StreamReader {
    messages: Ordered,
    remaining: u64,
}

impl StreamReader {
    /// Opens an ordered (ephemeral, unacknowledged) consumer on `filter` in `stream`, starting
    /// where `from` says.
    pub(crate) async fn open(
        js: &Context,
        stream: &str,
        filter: &str,
        from: ReadFrom,
    ) -> Result<Self, NatsError> {
        let err = |e: &dyn std::fmt::Display| NatsError::Stream {
            stream: stream.to_string(),
            error: e.to_string(),
        };
        let mut s = js.get_stream(stream).await.map_err(|e| err(&e))?;
        let consumer = |policy| OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: policy,
            ..Default::default()
        };
        let mut reader = s
            .create_consumer(consumer(from.policy()))
            .await
            .map_err(|e| err(&e))?;
        let mut remaining = reader.cached_info().num_pending;
        if let ReadFrom::Recent { per_subject, .. } = from {
            // A busy stream holds far more than a reader keeping `per_subject` per subject can
            // use: start at the last `cap` messages instead, so the read (and the live messages
            // waiting for it) stays bounded by what is kept.
            let state = s.info().await.map_err(|e| err(&e))?.state.clone();
            let cap = state.subjects_count.max(1).saturating_mul(per_subject);
            if remaining > cap {
                let start_sequence = last_n_start(state.last_sequence, cap);
                reader = s
                    .create_consumer(consumer(DeliverPolicy::ByStartSequence { start_sequence }))
                    .await
                    .map_err(|e| err(&e))?;
                remaining = reader.cached_info().num_pending.min(cap);
            }
        }
        let messages = reader.messages().await.map_err(|e| err(&e))?;
        Ok(Self {
            messages,
            remaining,
        })
    }

    /// The next (subject, body, epoch header), `None` once the snapshot is read.
    pub(crate) async fn next(&mut self) -> Result<Option<(String, Bytes, Option<String>)>, String> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let msg = match tokio::time::timeout(WARM_MESSAGE_TIMEOUT, self.messages.next()).await {
            Err(_) => {
                return Err(format!(
                    "{} messages still expected, none came",
                    self.remaining
                ))
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        // `pending` is what the consumer still holds; it also counts messages published since the
        // snapshot, so take whichever ends sooner.
        let pending = msg.info().map(|i| i.pending).unwrap_or(u64::MAX);
        self.remaining = (self.remaining - 1).min(pending);
        Ok(Some((
            msg.message.subject.to_string(),
            msg.message.payload.clone(),
            epoch_of(msg.message.headers.as_ref()).map(str::to_string),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_core::Topic;

    #[test]
    fn trades_and_candles_give_their_seq_and_ts_and_keep_their_body() {
        let mut p = TickParser::default();
        let trade = br#"{"type":"trade","topic":"trade.A","seq":9,"ts":17,"price":"1.5","size":"2","side":"buy","trade_id":"x"}"#;
        let meta = decode(&mut p, "tc.trade.A", "trade.A", &mut trade.to_vec()).expect("valid");
        let passed = |seq, ts| Decoded {
            seq: Seq(seq),
            ts: TsMicros(ts),
            quote: None,
        };
        assert_eq!(meta, passed(9, 17));
        let bar = br#"{"type":"bar","topic":"bar.1m.A","seq":3,"start":60000000,"open":"1","closed":false}"#;
        let meta = decode(&mut p, "tc.bar.1m.A", "bar.1m.A", &mut bar.to_vec()).expect("valid");
        assert_eq!(meta, passed(3, 0), "a candle has no ts: unmeasured");
        assert!(matches!(
            decode(&mut p, "tc.trade.B", "trade.B", &mut trade.to_vec()),
            Err(Reject::BadTopic(_))
        ));
        let no_seq = br#"{"type":"trade","topic":"trade.A","ts":1}"#;
        assert!(matches!(
            decode(&mut p, "tc.trade.A", "trade.A", &mut no_seq.to_vec()),
            Err(Reject::MissingField("seq"))
        ));
        assert!(matches!(
            decode(&mut p, "tc.trade.A", "trade.A", &mut b"{oops".to_vec()),
            Err(Reject::BadJson(_))
        ));
        assert!(carries_quotes("ticker.A") && carries_quotes("quote.A"));
        assert!(!carries_quotes("trade.A") && !carries_quotes("bar.1m.A"));
        assert!(!carries_quotes("book.A"));
        assert_eq!(topic_of_subject("tc", "tc.bar.1m.A"), Some("bar.1m.A"));
        assert_eq!(topic_of_subject("tc", "other.bar.1m.A"), None);
    }

    #[test]
    fn the_last_n_messages_start_within_the_stream() {
        assert_eq!(last_n_start(1000, 100), 901);
        assert_eq!(last_n_start(50, 100), 1);
        assert_eq!(last_n_start(1000, 0), 1000);
    }

    #[test]
    fn decode_checks_seq_ts_and_subject() {
        let mut p = TickParser::default();
        let body = r#"{"type":"tick","topic":"ticker.A","seq":7,"ts":1763700000000000,"bid":1.5,"ask":2,"last":1.75,"size":10}"#;
        let mut buf = body.as_bytes().to_vec();
        let t = decode(&mut p, "tickcast.ticker.A", "ticker.A", &mut buf).expect("valid");
        assert_eq!((t.seq, t.ts), (Seq(7), TsMicros(1763700000000000)));
        assert_eq!(t.quote.map(|q| q.last.0), Some(1.75));
        assert!(matches!(
            decode(
                &mut p,
                "tickcast.ticker.B",
                "ticker.B",
                &mut body.as_bytes().to_vec()
            ),
            Err(Reject::BadTopic(_))
        ));
        let no_seq = r#"{"topic":"ticker.A","ts":1,"bid":1,"ask":2,"last":1,"size":1}"#;
        assert!(matches!(
            decode(
                &mut p,
                "tickcast.ticker.A",
                "ticker.A",
                &mut no_seq.as_bytes().to_vec()
            ),
            Err(Reject::MissingField("seq"))
        ));
        assert!(validate_prefix("tickcast").is_ok() && validate_prefix("a.b").is_ok());
        // The epoch's subject is never a topic's: topics have a `.`, so two tokens.
        assert_eq!(epoch_subject("a.b"), "a.b._epoch");
        assert!(is_epoch_subject("a.b", "a.b._epoch"));
        assert!(!is_epoch_subject("a.b", "a.b._epoch.x") && !is_epoch_subject("a", "a.b._epoch"));
        assert_eq!(leader_subject("a.b"), "a.b._leader");
        assert!(
            is_leader_subject("a.b", "a.b._leader") && is_reserved_subject("a.b", "a.b._leader")
        );
        assert!(!is_reserved_subject("a.b", "a.b.ticker.X"));
        assert!(Topic::new("_leader").is_err());
        assert_eq!(live_prefix("a.b"), "a.b_live");
        assert_eq!(live_subject("a.b", "a.b.ticker.>"), "a.b_live.ticker.>");
        assert!(Topic::new("_epoch").is_err());
        assert!(validate_prefix("a.>").is_err() && validate_prefix("a b").is_err());
        assert!(validate_stream("TICKCAST").is_ok() && validate_stream("A.B").is_err());
    }
}
