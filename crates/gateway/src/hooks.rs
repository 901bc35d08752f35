//! What the gateway asks of the rest of the server, as small traits the binary implements: whether
//! the sources of data are ready, what `POST /publish` does, and metrics to refresh before a
//! scrape. The consumer owns the trait (as the bus owns `BusTap`), so the edge never learns how
//! feeds work inside and builds without them.

use std::fmt;

/// Something `/readyz` waits for (the feeds, a NATS sink).
pub trait ReadinessSource: Send + Sync + fmt::Debug {
    /// Appends why it is not ready to `reasons`; appends nothing when it is.
    fn not_ready(&self, reasons: &mut Vec<String>);
}

/// What `POST /publish` hands its body to; without one the route answers 404.
pub trait PublishHandler: Send + Sync + fmt::Debug {
    /// Largest body accepted; larger requests get 413 without being read.
    fn max_body_bytes(&self) -> usize;

    /// Publishes the ticks of `body` (scratch afterwards: it may be parsed in place). `single` =
    /// the body is one JSON document (`Content-Type: application/json`); otherwise NDJSON. Topics
    /// `scope` refuses must be rejected. Returns the JSON report sent back with 200.
    fn publish(&self, body: &mut [u8], single: bool, scope: &dyn Fn(&str) -> bool) -> Vec<u8>;
}

/// Metrics kept outside the gateway and registered in its registry ([`crate::Metrics::register`]),
/// sampled right before each `/metrics` render.
pub trait MetricsSource: Send + Sync {
    /// Brings the source's metrics up to date.
    fn refresh(&self);
}
