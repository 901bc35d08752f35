//! From configuration to running feeds: one [`FeedSpec`] per `[[feeds]]` entry, built into a feed
//! with its stats. Everything that can fail at startup (a busy port, a missing file, a bad URL)
//! fails here, before the server starts, with an error naming the feed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickcast_bus::Bus;

use crate::feed::{Feed, FeedError};
use crate::http::{HttpConfig, HttpFeed, PublishHook};
use crate::nats::feed::{NatsFeed, NatsFeedConfig};
use crate::replay::{ReplayConfig, ReplayFeed};
use crate::stats::FeedStats;
use crate::synthetic::{SyntheticConfig, SyntheticFeed};
use crate::tcp::{TcpConfig, TcpFeed};
use crate::upstream::{UpstreamConfig, UpstreamFeed};

/// One feed's source settings.
#[derive(Debug, Clone)]
pub enum FeedSpec {
    /// Built-in random walk.
    Synthetic(SyntheticConfig),
    /// NDJSON over TCP.
    Tcp(TcpConfig),
    /// A file played back.
    Replay(ReplayConfig),
    /// Another tickcast or an exchange over WebSocket.
    Upstream(UpstreamConfig),
    /// `POST /publish`.
    Http(HttpConfig),
    /// The ingest tier over NATS (gateway node of a scale-out).
    Nats(NatsFeedConfig),
}

impl FeedSpec {
    /// The feed's name.
    pub fn name(&self) -> &str {
        match self {
            FeedSpec::Synthetic(c) => &c.name,
            FeedSpec::Tcp(c) => &c.name,
            FeedSpec::Replay(c) => &c.name,
            FeedSpec::Upstream(c) => &c.name,
            FeedSpec::Http(c) => &c.name,
            FeedSpec::Nats(c) => &c.name,
        }
    }

    /// The `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedSpec::Synthetic(_) => "synthetic",
            FeedSpec::Tcp(_) => "tcp",
            FeedSpec::Replay(_) => "replay",
            FeedSpec::Upstream(_) => "upstream",
            FeedSpec::Http(_) => "http",
            FeedSpec::Nats(_) => "nats",
        }
    }
}

/// A feed's source plus how readiness treats it.
#[derive(Debug, Clone)]
pub struct FeedPlan {
    /// The source.
    pub spec: FeedSpec,
    /// `/readyz` waits for this feed to be connected (and live, with `max_idle`).
    pub required: bool,
    /// A required feed without a tick for this long is not ready; `None` = silence is fine.
    pub max_idle: Option<Duration>,
}

/// A feed ready to run.
pub struct BuiltFeed {
    /// The feed.
    pub feed: Box<dyn Feed>,
    /// Its stats (register them for metrics and readiness).
    pub stats: Arc<FeedStats>,
    /// The address it listens on, for feeds that listen (TCP).
    pub local_addr: Option<SocketAddr>,
    /// For the HTTP feed: what the gateway calls for `POST /publish`.
    pub publish_hook: Option<Arc<dyn PublishHook>>,
}

/// Builds the feed of `plan` publishing to `bus`: binds ports and checks files now.
pub fn build(plan: FeedPlan, bus: &Arc<Bus>) -> Result<BuiltFeed, FeedError> {
    let stats = FeedStats::new(plan.spec.name().to_string(), plan.spec.kind());
    stats.set_readiness(plan.required, plan.max_idle);
    let mut local_addr = None;
    let mut publish_hook = None;
    let feed: Box<dyn Feed> = match plan.spec {
        FeedSpec::Synthetic(c) => Box::new(SyntheticFeed::new(c)?),
        FeedSpec::Tcp(c) => {
            let name = c.name.clone();
            let feed = TcpFeed::bind(c)?;
            local_addr = Some(feed.local_addr().map_err(|error| FeedError::Io {
                feed: name,
                context: "cannot read the bound address".into(),
                error,
            })?);
            Box::new(feed)
        }
        FeedSpec::Replay(c) => Box::new(ReplayFeed::new(c)?),
        FeedSpec::Upstream(c) => Box::new(UpstreamFeed::new(c)?),
        FeedSpec::Nats(c) => Box::new(NatsFeed::new(c)?),
        FeedSpec::Http(c) => {
            let feed = HttpFeed::new(c, bus.clone(), stats.clone())?;
            publish_hook = Some(feed.hook());
            Box::new(feed)
        }
    };
    Ok(BuiltFeed {
        feed,
        stats,
        local_addr,
        publish_hook,
    })
}
