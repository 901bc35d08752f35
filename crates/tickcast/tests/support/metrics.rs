//! `/metrics` read the way Prometheus reads it: the exposition text parsed once into a map from
//! (name, labels) to value, so a test asks for `tickcast_feed_up{feed="up"}` and gets that sample,
//! whatever the order of its labels and whatever other series share its name or prefix.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use super::http::http_get_addr;
use super::wait::wait_until_async;
use super::{RunningServer, WAIT};

/// A sample's identity: its name and its labels, sorted by label name.
type Key = (String, Vec<(String, String)>);

/// One scrape, parsed.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    samples: HashMap<Key, f64>,
}

impl Metrics {
    /// Parses Prometheus text exposition; comments and lines that are not samples are skipped.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, rest)) = parse_key(line) else {
                continue;
            };
            // The value, then an optional timestamp.
            if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
                samples.insert(key, v);
            }
        }
        Metrics { samples }
    }

    /// The value of the sample `name` with exactly `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value of a sample written as in the exposition: `tickcast_connections_open`,
    /// `tickcast_feed_up{feed="up"}`. `None` when it is not exported.
    pub fn sample(&self, sample: &str) -> Option<f64> {
        let (key, rest) =
            parse_key(sample).unwrap_or_else(|| panic!("not a sample name: {sample}"));
        assert!(rest.trim().is_empty(), "not a sample name: {sample}");
        self.samples.get(&key).copied()
    }

    /// [`Metrics::sample`], 0 when it is not exported (a labelled counter not yet incremented).
    pub fn value(&self, sample: &str) -> f64 {
        self.sample(sample).unwrap_or(0.0)
    }

    /// The names that have at least one sample.
    pub fn names(&self) -> BTreeSet<&str> {
        self.samples.keys().map(|(n, _)| n.as_str()).collect()
    }
}

/// Splits `name{label="value",...}` off the front of `s`: (key, what follows).
fn parse_key(s: &str) -> Option<(Key, &str)> {
    let end = s
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut labels = Vec::new();
    let mut rest = &s[end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start_matches([',', ' ']);
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = r.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((label.trim().to_string(), value));
            r = &after[close + 1..];
        }
    }
    labels.sort();
    Some(((name.to_string(), labels), rest))
}

/// `/metrics` of the server at `addr`, parsed.
pub async fn metrics_at(addr: SocketAddr) -> Metrics {
    let (status, _, body) = http_get_addr(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics");
    Metrics::parse(&String::from_utf8_lossy(&body))
}

/// `/metrics` of `server`, parsed.
pub async fn metrics(server: &RunningServer) -> Metrics {
    metrics_at(server.addr()).await
}

/// The value of one sample in the `/metrics` of the server at `addr`, e.g.
/// `tickcast_feed_up{feed="tcp"}`; `None` when it is not exported.
pub async fn metric_at(addr: SocketAddr, sample: &str) -> Option<f64> {
    metrics_at(addr).await.sample(sample)
}

/// [`metric_at`] of `server`.
pub async fn metric(server: &RunningServer, sample: &str) -> Option<f64> {
    metric_at(server.addr(), sample).await
}

/// Waits (bounded) until `sample` of `server` reaches `min` (shards add their counters to the
/// shared metrics every 250 ms).
pub async fn wait_for_metric(server: &RunningServer, sample: &str, min: f64) {
    let addr = server.addr();
    wait_until_async(&format!("{sample} >= {min}"), 3 * WAIT, || async move {
        metric_at(addr, sample).await.is_some_and(|v| v >= min)
    })
    .await;
}

/// Waits (bounded) until the server at `addr` reports `n` open WebSocket connections.
pub async fn wait_for_open(addr: SocketAddr, n: usize) {
    wait_until_async(&format!("{n} open connections"), 3 * WAIT, || async move {
        metric_at(addr, "tickcast_connections_open{transport=\"ws\"}").await == Some(n as f64)
    })
    .await;
}
