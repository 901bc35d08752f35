//! The browser dashboard, embedded at build time so the binary needs no files next to it.

/// One embedded file.
pub(crate) struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

/// Looks up the asset served at `path`.
pub(crate) fn get(path: &str) -> Option<Asset> {
    let (body, content_type): (&'static [u8], _) = match path {
        "/" | "/index.html" => (
            include_bytes!("../../../../dashboards/web/index.html"),
            "text/html; charset=utf-8",
        ),
        "/app.js" => (
            include_bytes!("../../../../dashboards/web/app.js"),
            "text/javascript; charset=utf-8",
        ),
        // ES modules of the board and its symbol detail view (imported by app.js)
        "/detail.js" => (
            include_bytes!("../../../../dashboards/web/detail.js"),
            "text/javascript; charset=utf-8",
        ),
        "/tape.js" => (
            include_bytes!("../../../../dashboards/web/tape.js"),
            "text/javascript; charset=utf-8",
        ),
        "/candles.js" => (
            include_bytes!("../../../../dashboards/web/candles.js"),
            "text/javascript; charset=utf-8",
        ),
        "/chart.js" => (
            include_bytes!("../../../../dashboards/web/chart.js"),
            "text/javascript; charset=utf-8",
        ),
        "/ladder.js" => (
            include_bytes!("../../../../dashboards/web/ladder.js"),
            "text/javascript; charset=utf-8",
        ),
        "/latency.js" => (
            include_bytes!("../../../../dashboards/web/latency.js"),
            "text/javascript; charset=utf-8",
        ),
        // The JS SDK (clients/js) compiled for the page: `npm run dashboard-sdk` writes these, and the SDK's
        // test suite fails when they differ from a fresh build, so the server needs no node to embed them.
        "/sdk/index.js" => (
            include_bytes!("../../../../dashboards/web/sdk/index.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/book.js" => (
            include_bytes!("../../../../dashboards/web/sdk/book.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/clock.js" => (
            include_bytes!("../../../../dashboards/web/sdk/clock.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/clocksync.js" => (
            include_bytes!("../../../../dashboards/web/sdk/clocksync.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/errors.js" => (
            include_bytes!("../../../../dashboards/web/sdk/errors.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/sse.js" => (
            include_bytes!("../../../../dashboards/web/sdk/sse.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/frames.js" => (
            include_bytes!("../../../../dashboards/web/sdk/frames.js"),
            "text/javascript; charset=utf-8",
        ),
        "/sdk/wildcard.js" => (
            include_bytes!("../../../../dashboards/web/sdk/wildcard.js"),
            "text/javascript; charset=utf-8",
        ),
        "/style.css" => (
            include_bytes!("../../../../dashboards/web/style.css"),
            "text/css; charset=utf-8",
        ),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

/// Content-Security-Policy for the dashboard: nothing from other origins, no inline code.
pub(crate) const CSP: &str =
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
