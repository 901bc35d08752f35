//! The HTTP feed: `POST /publish` with one JSON tick or an NDJSON body, for low-rate publishers and
//! scripts. The gateway owns the HTTP side and calls the [`PublishHook`] this feed provides, so it
//! needs no knowledge of parsing or publishing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tickcast_bus::Bus;
use tickcast_core::json;

use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::publisher::Publisher;
use crate::reject::{Reject, RejectReason};
use crate::sink::TickSink;
use crate::spec::{millis, FeedConfigError, DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES};
use crate::stats::FeedStats;

/// Errors listed in a [`PublishReport`]: the first few are enough to fix a publisher, and the
/// response stays small whatever the body.
pub const MAX_REPORTED_ERRORS: usize = 10;

/// One rejected line of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// Line number in the body, from 1.
    pub line: u64,
    /// Why.
    pub reason: RejectReason,
    /// Details.
    pub message: String,
}

/// The answer to one publish request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    /// Valid ticks.
    pub accepted: u64,
    /// Rejected lines.
    pub rejected: u64,
    /// The first [`MAX_REPORTED_ERRORS`] rejected lines.
    pub errors: Vec<LineError>,
}

impl PublishReport {
    /// `{"accepted":N,"rejected":M,"errors":[{"line":L,"reason":"…","message":"…"},…]}`
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = b"{\"accepted\":".to_vec();
        json::write_u64(&mut out, self.accepted);
        out.extend_from_slice(b",\"rejected\":");
        json::write_u64(&mut out, self.rejected);
        out.extend_from_slice(b",\"errors\":[");
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"line\":");
            json::write_u64(&mut out, e.line);
            out.extend_from_slice(b",\"reason\":");
            json::write_str(&mut out, e.reason.label());
            out.extend_from_slice(b",\"message\":");
            json::write_str(&mut out, &e.message);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// What the gateway calls for `POST /publish`. Implemented by the HTTP feed.
pub trait PublishHook: Send + Sync + std::fmt::Debug {
    /// Largest body accepted; larger requests get 413 without being read.
    fn max_body_bytes(&self) -> usize;

    /// Publishes the ticks of `body` (scratch afterwards: parsed in place). `single` = the body is
    /// one JSON tick (`Content-Type: application/json`, may span lines); otherwise NDJSON. Lines
    /// whose topic `scope` does not allow are rejected as `forbidden` (the caller's credential
    /// decides; the feed knows nothing of authentication).
    fn publish(&self, body: &mut [u8], single: bool, scope: &dyn Fn(&str) -> bool)
        -> PublishReport;
}

/// Default of [`HttpConfig::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Settings of the HTTP feed: a `kind = "http"` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Feed name for logs and metrics.
    pub name: String,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest NDJSON line in bytes.
    pub max_line_bytes: usize,
    /// Readiness waits for this feed (up while the server runs).
    pub required: bool,
    /// Not ready after this long without a tick; `None` (`max_idle_ms = 0`) = off.
    #[serde(rename = "max_idle_ms", deserialize_with = "millis::zero_off")]
    pub max_idle: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            name: "http".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            required: true,
            max_idle: None,
        }
    }
}

impl HttpConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        FeedConfigError::named(feed)?;
        FeedConfigError::at_least(feed, "max_body_bytes", self.max_body_bytes, MIN_LINE_BYTES)?;
        FeedConfigError::at_least(feed, "max_line_bytes", self.max_line_bytes, MIN_LINE_BYTES)
    }
}

/// The publishing side of `POST /publish`, shared with the gateway's shards.
#[derive(Debug)]
pub struct HttpPublisher {
    max_body_bytes: usize,
    /// One sink behind a mutex: requests are few and short, and one sink keeps seq order.
    sink: Mutex<TickSink>,
}

impl PublishHook for HttpPublisher {
    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn publish(
        &self,
        body: &mut [u8],
        single: bool,
        scope: &dyn Fn(&str) -> bool,
    ) -> PublishReport {
        let mut report = PublishReport::default();
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let mut on_reject = |line: u64, e: &Reject| {
            if report.errors.len() < MAX_REPORTED_ERRORS {
                report.errors.push(LineError {
                    line,
                    reason: e.reason(),
                    message: e.to_string(),
                });
            }
        };
        let origin = "POST /publish";
        let counts = if single {
            sink.ingest_document(body, &origin, &mut on_reject, scope)
        } else {
            sink.ingest_ndjson_scoped(body, 1, &origin, &mut on_reject, scope)
        };
        report.accepted = counts.accepted;
        report.rejected = counts.rejected;
        report
    }
}

/// The HTTP feed: its hook publishes; the feed itself only reports being up while the server runs.
pub struct HttpFeed {
    name: String,
    hook: Arc<HttpPublisher>,
}

impl HttpFeed {
    /// Validates `config` and builds the feed and its hook, publishing to `bus` under `stats`.
    pub fn new(
        config: HttpConfig,
        bus: Arc<Bus>,
        stats: Arc<FeedStats>,
    ) -> Result<Self, FeedError> {
        config.validate()?;
        let sink = TickSink::new(Publisher::new(bus, stats), config.max_line_bytes);
        Ok(Self {
            name: config.name,
            hook: Arc::new(HttpPublisher {
                max_body_bytes: config.max_body_bytes,
                sink: Mutex::new(sink),
            }),
        })
    }

    /// The hook to install in the gateway.
    pub fn hook(&self) -> Arc<dyn PublishHook> {
        self.hook.clone()
    }
}

impl Feed for HttpFeed {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
        Box::pin(async move {
            let stats = ctx.publisher.stats().clone();
            stats.set_connected(true);
            ctx.shutdown.cancelled().await;
            stats.set_connected(false);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_bus::BusConfig;

    fn hook() -> (Arc<dyn PublishHook>, Arc<Bus>) {
        let bus = Bus::new(&BusConfig::default());
        let feed = HttpFeed::new(
            HttpConfig {
                max_line_bytes: 100,
                ..Default::default()
            },
            bus.clone(),
            FeedStats::new("http", "http"),
        )
        .unwrap();
        (feed.hook(), bus)
    }

    #[test]
    fn sizes_without_room_for_a_tick_are_refused_by_the_config_and_the_feed() {
        let small = HttpConfig {
            max_body_bytes: 63,
            ..Default::default()
        };
        let e = small.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "feed http: max_body_bytes is 63, must be >= 64"
        );
        let bus = Bus::new(&BusConfig::default());
        let built = HttpFeed::new(small, bus, FeedStats::new("http", "http"));
        assert!(matches!(built, Err(FeedError::Config { .. })));
    }

    #[test]
    fn ndjson_body_reports_accepted_rejected_and_line_numbers() {
        let (hook, bus) = hook();
        let mut body =
            b"{\"topic\":\"ticker.A\",\"bid\":1,\"ask\":2,\"last\":1,\"size\":1}\n\nnope\n"
                .to_vec();
        let r = hook.publish(&mut body, false, &|_| true);
        assert_eq!((r.accepted, r.rejected), (1, 1));
        assert_eq!(r.errors[0].line, 3);
        assert_eq!(r.errors[0].reason, RejectReason::BadJson);
        assert_eq!(bus.get("ticker.A").unwrap().last().unwrap().seq.0, 1);
        let json = String::from_utf8(r.to_json()).unwrap();
        assert!(
            json.starts_with(
                r#"{"accepted":1,"rejected":1,"errors":[{"line":3,"reason":"bad_json","message":"#
            ),
            "{json}"
        );
    }

    #[test]
    fn a_pretty_printed_single_tick_is_one_tick() {
        let (hook, _) = hook();
        let mut body = b"{\n  \"topic\": \"ticker.A\",\n  \"bid\": 1,\n  \"ask\": 2,\n  \"last\": 1,\n  \"size\": 1\n}\n".to_vec();
        let r = hook.publish(&mut body, true, &|_| true);
        assert_eq!((r.accepted, r.rejected), (1, 0), "{r:?}");
    }

    #[test]
    fn lines_outside_the_publishers_scope_are_rejected_and_the_rest_published() {
        let (hook, bus) = hook();
        let mut body = concat!(
            r#"{"topic":"ticker.A","bid":1,"ask":2,"last":1,"size":1}"#,
            "\n",
            r#"{"topic":"book.A","bid":1,"ask":2,"last":1,"size":1}"#,
            "\n",
        )
        .as_bytes()
        .to_vec();
        let scope = |t: &str| t.starts_with("ticker.");
        let r = hook.publish(&mut body, false, &scope);
        assert_eq!((r.accepted, r.rejected), (1, 1));
        assert_eq!(r.errors[0].reason, RejectReason::Forbidden);
        assert_eq!(r.errors[0].message, "not entitled to publish book.A");
        assert!(
            bus.get("book.A").is_none(),
            "a refused line creates nothing"
        );
        let mut one = br#"{"topic":"book.A","bid":1,"ask":2,"last":1,"size":1}"#.to_vec();
        let r = hook.publish(&mut one, true, &scope);
        assert_eq!((r.accepted, r.rejected), (0, 1));
    }
}
