//! The topic universe of a run and which topics each connection subscribes to.
//!
//! Topics come from a `PREFIX{:04}` pattern with a count (what tickcast's synthetic feed
//! produces), an explicit list, or the server's `GET /topics`. Each topic gets a dense id so
//! per-connection sequence tracking is an array, not a map keyed by strings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest `GET /topics` body accepted.
const MAX_TOPICS_BODY: usize = 32 << 20;

/// Why the topic set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The set is empty.
    #[error("no topics to subscribe to")]
    Empty,
    /// `GET /topics` failed.
    #[error("GET /topics from {addr}: {msg}")]
    Fetch {
        /// Server address.
        addr: SocketAddr,
        /// What went wrong.
        msg: String,
    },
}

/// How connections pick their K topics.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Assign {
    /// Connection c takes topics (c*K + j) mod T: even coverage, same as the peers rig.
    Sequential,
    /// K distinct topics chosen at random (seeded, reproducible).
    Random,
}

/// All topics of a run, with a fast name → id lookup.
#[derive(Debug, Clone)]
pub struct TopicTable {
    names: Vec<String>,
    /// Set when names are exactly `prefix` + zero-padded 4-digit index, which allows parsing the
    /// id out of the name instead of hashing it.
    prefix: Option<String>,
    index: HashMap<Vec<u8>, u32>,
}

impl TopicTable {
    /// `prefix0000` .. `prefix{count-1}` (at least 4 digits, like tickcast's `--symbols`).
    pub fn pattern(prefix: &str, count: usize) -> Result<Self, TopicsError> {
        if count == 0 {
            return Err(TopicsError::Empty);
        }
        let names = (0..count).map(|i| format!("{prefix}{i:04}")).collect();
        Ok(Self {
            names,
            prefix: Some(prefix.to_string()),
            index: HashMap::new(),
        })
    }

    /// An explicit list (duplicates removed, order kept).
    pub fn list(names: Vec<String>) -> Result<Self, TopicsError> {
        let mut index = HashMap::with_capacity(names.len());
        let mut uniq = Vec::with_capacity(names.len());
        for n in names {
            if !index.contains_key(n.as_bytes()) {
                index.insert(n.as_bytes().to_vec(), uniq.len() as u32);
                uniq.push(n);
            }
        }
        if uniq.is_empty() {
            return Err(TopicsError::Empty);
        }
        Ok(Self {
            names: uniq,
            prefix: None,
            index,
        })
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: construction refuses empty sets.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Topic name by id.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// All names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Id of a topic name as received on the wire.
    #[inline]
    pub fn id(&self, name: &[u8]) -> Option<u32> {
        match &self.prefix {
            Some(p) => {
                let digits = name.strip_prefix(p.as_bytes())?;
                // Exactly what `{:04}` produces: 4 digits, or more without a leading zero.
                if digits.len() < 4 || (digits.len() > 4 && digits[0] == b'0') || digits.len() > 9 {
                    return None;
                }
                let mut v: u32 = 0;
                for &c in digits {
                    if !c.is_ascii_digit() {
                        return None;
                    }
                    v = v * 10 + u32::from(c - b'0');
                }
                ((v as usize) < self.names.len()).then_some(v)
            }
            None => self.index.get(name).copied(),
        }
    }

    /// The topic ids connection `conn` subscribes to: `k` distinct ids, sorted.
    pub fn assign(&self, conn: usize, k: usize, how: Assign, seed: u64) -> Vec<u32> {
        let t = self.names.len();
        let k = k.min(t);
        let mut ids: Vec<u32> = match how {
            Assign::Sequential => (0..k).map(|j| ((conn * k + j) % t) as u32).collect(),
            Assign::Random => {
                let mut rng = SmallRng::seed_from_u64(
                    seed ^ (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                if k * 2 >= t {
                    // Dense: partial Fisher-Yates over all ids.
                    let mut all: Vec<u32> = (0..t as u32).collect();
                    for i in 0..k {
                        let j = rng.random_range(i..t);
                        all.swap(i, j);
                    }
                    all.truncate(k);
                    all
                } else {
                    // Sparse: rejection sampling, bounded because k < t/2 keeps acceptance >= 1/2.
                    let mut v = Vec::with_capacity(k);
                    while v.len() < k {
                        let x = rng.random_range(0..t as u32);
                        if !v.contains(&x) {
                            v.push(x);
                        }
                    }
                    v
                }
            }
        };
        ids.sort_unstable();
        ids
    }
}

#[derive(serde::Deserialize)]
struct TopicsBody {
    topics: Vec<TopicEntry>,
}

#[derive(serde::Deserialize)]
struct TopicEntry {
    topic: String,
}

/// Fetches the server's topic list with `GET /topics` (HTTP/1.1, `Connection: close`).
pub async fn fetch_from_server(addr: SocketAddr, host: &str) -> Result<Vec<String>, TopicsError> {
    let err = |msg: String| TopicsError::Fetch { addr, msg };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| err(e.to_string()))?;
        let req = format!("GET /topics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut body = Vec::new();
        (&mut s)
            .take(MAX_TOPICS_BODY as u64 + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| err(e.to_string()))?;
        if body.len() > MAX_TOPICS_BODY {
            return Err(err("response too large".into()));
        }
        parse_topics_response(&body).map_err(err)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| err("timed out".into()))?
}

fn parse_topics_response(resp: &[u8]) -> Result<Vec<String>, String> {
    let end = memchr::memmem::find(resp, b"\r\n\r\n").ok_or("no HTTP header end")?;
    let head = String::from_utf8_lossy(&resp[..end]);
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("server answered {status:?}"));
    }
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let raw = &resp[end + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    let parsed: TopicsBody =
        serde_json::from_slice(&body).map_err(|e| format!("bad JSON body: {e}"))?;
    Ok(parsed.topics.into_iter().map(|t| t.topic).collect())
}

/// Decodes an HTTP/1.1 chunked body (bounded by its input length).
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    loop {
        let line_end = memchr::memmem::find(raw, b"\r\n").ok_or("truncated chunk header")?;
        let size_txt = std::str::from_utf8(&raw[..line_end]).map_err(|_| "bad chunk header")?;
        let size_txt = size_txt.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_txt, 16).map_err(|_| "bad chunk size")?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = raw.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        raw = raw.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_ids_round_trip() {
        let t = TopicTable::pattern("ticker.SYM", 12000).unwrap();
        assert_eq!(t.name(7), "ticker.SYM0007");
        assert_eq!(t.id(b"ticker.SYM0007"), Some(7));
        assert_eq!(t.id(b"ticker.SYM11999"), Some(11999));
        assert_eq!(t.id(b"ticker.SYM12000"), None);
        assert_eq!(t.id(b"ticker.SYM007"), None);
        assert_eq!(t.id(b"ticker.SYM00007"), None);
        assert_eq!(t.id(b"ticker.AAPL"), None);
        for (i, n) in t.names().iter().enumerate() {
            assert_eq!(t.id(n.as_bytes()), Some(i as u32));
        }
    }

    #[test]
    fn list_ids() {
        let t = TopicTable::list(vec!["a".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.id(b"b"), Some(1));
        assert_eq!(t.id(b"c"), None);
        assert!(TopicTable::list(vec![]).is_err());
    }

    #[test]
    fn assignment_is_distinct_and_bounded() {
        let t = TopicTable::pattern("t.", 100).unwrap();
        assert_eq!(
            t.assign(3, 10, Assign::Sequential, 0),
            (30..40).collect::<Vec<_>>()
        );
        assert_eq!(t.assign(9, 20, Assign::Sequential, 0).len(), 20);
        for how in [Assign::Sequential, Assign::Random] {
            for k in [1, 10, 60, 100, 150] {
                let ids = t.assign(5, k, how, 42);
                let mut d = ids.clone();
                d.dedup();
                assert_eq!(d.len(), k.min(100));
                assert!(ids.iter().all(|&i| i < 100));
            }
        }
        assert_eq!(
            t.assign(5, 10, Assign::Random, 1),
            t.assign(5, 10, Assign::Random, 1)
        );
    }

    #[test]
    fn parses_topics_responses() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"topics\":[{\"topic\":\"ticker.A\",\"seq\":3},{\"topic\":\"ticker.B\"}]}";
        assert_eq!(
            parse_topics_response(r).unwrap(),
            vec!["ticker.A", "ticker.B"]
        );
        let c = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"top\r\n11\r\nics\":[{\"topic\":\"x\r\n4\r\n\"}]}\r\n0\r\n\r\n";
        assert_eq!(parse_topics_response(c).unwrap(), vec!["x"]);
        assert!(parse_topics_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }
}
