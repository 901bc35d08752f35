//! Why an input became no tick: a typed error per cause, mapped onto a small fixed set of reasons
//! (the `reason` label of `tickcast_feed_parse_errors_total`, so the label set stays bounded).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bounded set of reasons an input is rejected; one counter per feed and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A line longer than the feed's `max_line_bytes`.
    TooLong,
    /// Not parseable as JSON (or CSV), or not an object.
    BadJson,
    /// A required field is absent.
    MissingField,
    /// The topic is not a valid `<channel>.<symbol>` name.
    BadTopic,
    /// A price, size, ts or seq is not a usable number.
    BadNumber,
    /// The bus holds `max_topics` topics already and refused a new one.
    TopicLimit,
    /// A well-formed message the source should not send (binary frame, unknown shape).
    Unsupported,
    /// The publisher's credential does not cover the topic (`POST /publish` with auth on).
    Forbidden,
    /// A book update that would corrupt the book (crossed, negative size, delta before any
    /// snapshot): refused, the book stays as it was.
    BookRefused,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::TooLong,
        RejectReason::BadJson,
        RejectReason::MissingField,
        RejectReason::BadTopic,
        RejectReason::BadNumber,
        RejectReason::TopicLimit,
        RejectReason::Unsupported,
        RejectReason::Forbidden,
        RejectReason::BookRefused,
    ];

    /// The metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::TooLong => "too_long",
            RejectReason::BadJson => "bad_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadTopic => "bad_topic",
            RejectReason::BadNumber => "bad_number",
            RejectReason::TopicLimit => "topic_limit",
            RejectReason::Unsupported => "unsupported",
            RejectReason::Forbidden => "forbidden",
            RejectReason::BookRefused => "book_refused",
        }
    }

    /// Position in [`RejectReason::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One rejected input with what was wrong, precise enough to fix the publisher.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    /// The line exceeds the cap.
    #[error("line is longer than {max} bytes")]
    TooLong {
        /// The configured cap.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape: what is wrong in plain words (see [`Reject::json`]).
    #[error("{0}")]
    BadJson(String),
    /// A required field is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// The topic failed validation.
    #[error("invalid topic: {0}")]
    BadTopic(String),
    /// A numeric field is not a finite number (or not a non-negative integer for ts/seq/size).
    #[error("field {0:?} is not a valid number")]
    BadNumber(&'static str),
    /// The bus refused to create the topic.
    #[error("{0}")]
    TopicLimit(String),
    /// Input of a kind the source does not accept.
    #[error("unsupported input: {0}")]
    Unsupported(&'static str),
    /// The publisher may not publish this topic.
    #[error("not entitled to publish {0}")]
    Forbidden(String),
    /// A field of a book or trade line is malformed: which, and what it must be.
    #[error("field {0:?} {1}")]
    BadField(&'static str, &'static str),
    /// The book refused the update; it is unchanged.
    #[error("book update refused: {0}")]
    BookRefused(tickcast_core::market::BookError),
}

impl Reject {
    /// The bounded reason this reject is counted under.
    pub fn reason(&self) -> RejectReason {
        match self {
            Reject::TooLong { .. } => RejectReason::TooLong,
            Reject::BadJson(_) => RejectReason::BadJson,
            Reject::MissingField(_) => RejectReason::MissingField,
            Reject::BadTopic(_) => RejectReason::BadTopic,
            Reject::BadNumber(_) => RejectReason::BadNumber,
            Reject::TopicLimit(_) => RejectReason::TopicLimit,
            Reject::Unsupported(_) => RejectReason::Unsupported,
            Reject::Forbidden(_) => RejectReason::Forbidden,
            Reject::BadField(..) => RejectReason::BadNumber,
            Reject::BookRefused(_) => RejectReason::BookRefused,
        }
    }
}

impl Reject {
    /// A simd-json parse error as a [`Reject::BadJson`] in plain words.
    pub fn json(e: &simd_json::Error) -> Reject {
        Reject::BadJson(tickcast_core::json::describe_error(e))
    }
}

pub(crate) use tickcast_core::json::type_name;

/// At most one log line per this interval per feed; the rest are counted and reported with the next.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Rate limiter for one feed's warnings: a flood of bad input must not become a flood of logs.
#[derive(Debug)]
pub struct LogLimiter {
    start: Instant,
    /// Milliseconds since `start` before which nothing is logged.
    next_ms: AtomicU64,
    /// Events not logged since the last logged one.
    suppressed: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogLimiter {
    /// `Some(suppressed since the last one)` when this event may be logged, `None` to stay quiet.
    pub fn admit(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + LOG_INTERVAL.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Where an input came from, for log lines: a peer address, a file, `POST /publish`.
pub type Origin<'a> = &'a dyn fmt::Display;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indexed_in_order() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), RejectReason::ALL.len());
    }

    #[test]
    fn limiter_admits_one_per_interval_and_counts_the_rest() {
        let l = LogLimiter::default();
        assert_eq!(l.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(l.admit(), None);
        }
        // Pretend the interval passed.
        l.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(l.admit(), Some(5));
    }
}
