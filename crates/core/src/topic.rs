//! Topic names: `<channel>.<symbol>`, validated once at the edge so the rest of the code can trust them.

use std::fmt;
use std::sync::Arc;

/// Longest topic name accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 64;

/// A validated topic name such as `ticker.AAPL`; cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

/// Why a string is not a valid topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("topic is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("topic is {0} bytes long, the limit is {MAX_TOPIC_LEN}")]
    TooLong(usize),
    /// The name holds a character outside ASCII letters, digits and `._:-`.
    #[error("topic contains {0:?}; allowed are ASCII letters, digits and . _ : -")]
    BadChar(char),
    /// The name has no `.` separating a channel from a symbol, or one side is empty.
    #[error("topic must look like <channel>.<symbol>, e.g. ticker.AAPL")]
    NoChannel,
}

impl Topic {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        validate(name)?;
        Ok(Topic(Arc::from(name)))
    }

    /// Builds `<channel>.<symbol>` and validates the result.
    pub fn from_parts(channel: &str, symbol: &str) -> Result<Self, TopicError> {
        Self::new(&format!("{channel}.{symbol}"))
    }

    /// The topic name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `.` (e.g. `ticker`).
    pub fn channel(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(c, _)| c)
    }

    /// The part after the first `.` (e.g. `AAPL`).
    pub fn symbol(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, s)| s)
    }

    /// How a lagging subscriber may lose this topic's messages, from its channel.
    pub fn class(&self) -> TopicClass {
        TopicClass::of_channel(self.channel())
    }
}

/// What a topic's messages are, as far as backpressure is concerned: whether a newer one makes an
/// older one worthless, every one matters, or they only make sense in order from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicClass {
    /// Each message is the latest state (`ticker`, `bar`): a lagging subscriber may get only the
    /// newest (conflation).
    #[default]
    Latest,
    /// Every message is an event (`trade`): never conflated; a lagging subscriber loses them with
    /// a `dropped` marker and can recover them from history.
    Event,
    /// Deltas of an order book (`book`): losing one corrupts the book, so a lagging subscriber's
    /// pending deltas are replaced by one fresh snapshot (a `resync` marker, then the snapshot).
    Book,
}

impl TopicClass {
    /// The class of the topics of `channel`.
    pub fn of_channel(channel: &str) -> TopicClass {
        match channel {
            "book" => TopicClass::Book,
            "trade" => TopicClass::Event,
            _ => TopicClass::Latest,
        }
    }
}

fn validate(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(TopicError::BadChar(c));
    }
    match name.split_once('.') {
        Some((channel, symbol)) if !channel.is_empty() && !symbol.is_empty() => Ok(()),
        _ => Err(TopicError::NoChannel),
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A wildcard subscription such as `ticker.*` or `bar.1m.*`: every topic that starts with the part
/// before the `*` (one or more whole segments), including topics created after it subscribed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPattern(Arc<str>);

impl TopicPattern {
    /// Validates `name`: one or more topic segments followed by `.*`.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        if name.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong(name.len()));
        }
        let Some(prefix) = name.strip_suffix(".*") else {
            return Err(TopicError::NoChannel);
        };
        if prefix.is_empty() || prefix.split('.').any(str::is_empty) {
            return Err(TopicError::NoChannel);
        }
        if let Some(c) = prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(TopicError::BadChar(c));
        }
        Ok(TopicPattern(Arc::from(name)))
    }

    /// Whether `name` looks like a pattern (ends with `*`), as opposed to a topic.
    pub fn is_pattern(name: &str) -> bool {
        name.ends_with('*')
    }

    /// The pattern as written, e.g. `ticker.*`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel its topics belong to (the part before the first `.`).
    pub fn channel(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(c, _)| c)
    }

    /// Whether `topic` is one of its topics: it starts with the pattern's prefix (with its dot)
    /// and has something after it.
    pub fn matches(&self, topic: &Topic) -> bool {
        let prefix = &self.0[..self.0.len() - 1];
        topic.as_str().len() > prefix.len() && topic.as_str().starts_with(prefix)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicPattern({})", &*self.0)
    }
}

impl AsRef<str> for TopicPattern {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({})", &*self.0)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_topics() {
        for t in [
            "ticker.AAPL",
            "ticker.BTC-USD",
            "trade.ES:Z6",
            "a.b",
            "ticker.SYM_0001.x",
        ] {
            assert_eq!(Topic::new(t).unwrap().as_str(), t);
        }
        let t = Topic::new("ticker.AAPL").unwrap();
        assert_eq!((t.channel(), t.symbol()), ("ticker", "AAPL"));
    }

    #[test]
    fn rejects_invalid_topics() {
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert_eq!(Topic::new("AAPL"), Err(TopicError::NoChannel));
        assert_eq!(Topic::new(".AAPL"), Err(TopicError::NoChannel));
        assert_eq!(Topic::new("ticker."), Err(TopicError::NoChannel));
        assert_eq!(Topic::new("ticker.AA PL"), Err(TopicError::BadChar(' ')));
        assert_eq!(Topic::new("ticker.ÄAPL"), Err(TopicError::BadChar('Ä')));
        let long = format!("ticker.{}", "A".repeat(58));
        assert_eq!(Topic::new(&long), Err(TopicError::TooLong(65)));
        assert!(Topic::new(&long[..64]).is_ok());
    }

    #[test]
    fn patterns_match_whole_segments_after_their_prefix() {
        let t = |s| Topic::new(s).unwrap();
        let all = TopicPattern::new("ticker.*").unwrap();
        assert_eq!(all.channel(), "ticker");
        assert!(all.matches(&t("ticker.AAPL")));
        assert!(all.matches(&t("ticker.SYM_0001.x")));
        assert!(!all.matches(&t("tickers.AAPL")));
        assert!(!all.matches(&t("trade.AAPL")));
        let bars = TopicPattern::new("bar.1m.*").unwrap();
        assert!(bars.matches(&t("bar.1m.AAPL")));
        assert!(!bars.matches(&t("bar.1s.AAPL")));
        assert!(!bars.matches(&t("bar.1mx.AAPL")));
        for bad in [
            "*",
            ".*",
            "ticker*",
            "ticker.A*",
            "ticker..*",
            "tick er.*",
            "ticker.*.x",
        ] {
            assert!(TopicPattern::new(bad).is_err(), "{bad}");
        }
    }
}
