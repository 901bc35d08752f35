//! `[market]`: the order books and candles tickcast builds once at ingest (the depth each book
//! keeps, which candle intervals exist and how often an open candle is re-sent). Defaults are the
//! bus's ([`DEFAULT_BOOK_DEPTH`], [`BarsConfig::default`]).

use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::{BarsConfig, DEFAULT_BOOK_DEPTH, MAX_BOOK_DEPTH};

use super::{millis, ConfigError};

/// Most candle intervals: each is one more topic per traded symbol and one more builder per trade.
const MAX_BAR_INTERVALS: usize = 8;
/// Longest candle interval.
const MAX_BAR_INTERVAL: Duration = Duration::from_secs(86_400);
/// Shortest `bar_update_ms`: an open candle re-sent more often costs an encoding per trade.
const MIN_BAR_UPDATE_MS: u64 = 10;

/// `[market]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MarketSection {
    /// Levels each side every `book.*` topic keeps and sends in its snapshots.
    pub book_depth: usize,
    /// Candle intervals built from trades, as `<n>s`, `<n>m` or `<n>h` (the topic is
    /// `bar.<interval>.<symbol>`).
    pub bar_intervals: Vec<String>,
    /// Least time between two sends of an open candle, in milliseconds.
    pub bar_update_ms: u64,
    /// Whether symbols a feed sends only quotes for get candles from the quotes' last trade.
    pub bars_from_quotes: bool,
}

impl Default for MarketSection {
    fn default() -> Self {
        let bars = BarsConfig::default();
        Self {
            book_depth: DEFAULT_BOOK_DEPTH,
            bar_intervals: bars.intervals.into_iter().map(|(l, _)| l).collect(),
            bar_update_ms: millis(bars.update),
            bars_from_quotes: bars.from_quotes,
        }
    }
}

impl MarketSection {
    /// Checks ranges and parses the intervals.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bars().map(|_| ())
    }

    /// The book depth, checked.
    pub fn book_depth(&self) -> Result<usize, ConfigError> {
        if !(10..=MAX_BOOK_DEPTH).contains(&self.book_depth) {
            return Err(ConfigError::Invalid(format!(
                "market.book_depth must be between 10 (the checksum covers 10 levels) and {MAX_BOOK_DEPTH}"
            )));
        }
        Ok(self.book_depth)
    }

    /// The candles, checked.
    pub fn bars(&self) -> Result<BarsConfig, ConfigError> {
        self.book_depth()?;
        if self.bar_intervals.len() > MAX_BAR_INTERVALS {
            return Err(ConfigError::Invalid(format!(
                "market.bar_intervals has {} entries; at most {MAX_BAR_INTERVALS}",
                self.bar_intervals.len()
            )));
        }
        if self.bar_update_ms < MIN_BAR_UPDATE_MS {
            return Err(ConfigError::Invalid(format!(
                "market.bar_update_ms must be at least {MIN_BAR_UPDATE_MS}"
            )));
        }
        let mut intervals = Vec::new();
        for label in &self.bar_intervals {
            let length = parse_interval(label).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "market.bar_intervals: {label:?} is not <n>s, <n>m or <n>h between 1s and 24h"
                ))
            })?;
            if intervals.iter().any(|(l, _)| l == label) {
                return Err(ConfigError::Invalid(format!(
                    "market.bar_intervals lists {label:?} twice"
                )));
            }
            intervals.push((label.clone(), length));
        }
        Ok(BarsConfig {
            intervals,
            update: Duration::from_millis(self.bar_update_ms),
            from_quotes: self.bars_from_quotes,
        })
    }
}

/// `"15s"`, `"1m"`, `"4h"` as a length; `None` outside 1 s..=24 h or when malformed.
fn parse_interval(label: &str) -> Option<Duration> {
    let unit = label.chars().last()?;
    let n: u64 = label[..label.len() - 1].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    let d = Duration::from_secs(secs);
    (secs >= 1 && d <= MAX_BAR_INTERVAL && !label.starts_with('0')).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_util::invalid;
    use crate::config::Config;

    #[test]
    fn intervals_parse_and_bad_ones_are_named() {
        assert_eq!(parse_interval("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_interval("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_interval("24h"), Some(Duration::from_secs(86_400)));
        for bad in ["", "s", "0s", "25h", "1d", "-1m", "1.5m", "01m"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
        let m = invalid("[market]\nbar_intervals = [\"1x\"]\n");
        assert!(m.contains("\"1x\""), "{m}");
        let m = invalid("[market]\nbook_depth = 5\n");
        assert!(m.contains("market.book_depth"), "{m}");
        let m = invalid("[market]\nbar_intervals = [\"1m\", \"1m\"]\n");
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn the_section_reaches_the_bus() {
        let s = Config::from_toml(
            "[market]\nbook_depth = 50\nbar_intervals = [\"5s\"]\nbar_update_ms = 100\n",
        )
        .and_then(Config::resolve)
        .unwrap();
        assert_eq!(s.bus.book_depth, 50);
        assert_eq!(
            s.bus.bars.intervals,
            vec![("5s".to_string(), Duration::from_secs(5))]
        );
        assert_eq!(s.bus.bars.update, Duration::from_millis(100));
    }
}
