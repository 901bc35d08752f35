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
        // ES modules of the symbol detail view (imported by app.js)
        "/detail.js" => (
            include_bytes!("../../../../dashboards/web/detail.js"),
            "text/javascript; charset=utf-8",
        ),
        "/bookfeed.js" => (
            include_bytes!("../../../../dashboards/web/bookfeed.js"),
            "text/javascript; charset=utf-8",
        ),
        "/book.js" => (
            include_bytes!("../../../../dashboards/web/book.js"),
            "text/javascript; charset=utf-8",
        ),
        "/decimal.js" => (
            include_bytes!("../../../../dashboards/web/decimal.js"),
            "text/javascript; charset=utf-8",
        ),
        "/crc32.js" => (
            include_bytes!("../../../../dashboards/web/crc32.js"),
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
