//! Cross-origin reads for browsers: a page served from another origin (a dashboard on its own host)
//! may read `/sse`, `/topics` and the status of a refused `/ws` or `/sse` (the SDKs' probe that
//! tells a 401 from a server that is down), provided its Origin passes the same allowlist that
//! admits streams (`[auth] allowed_origins`; empty = any origin).
//!
//! Credentials are explicit (a bearer token in a header or the query), never cookies, so the
//! response names the origin and never allows credentials: no site gains anything a visitor's
//! browser holds.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::StatusCode;

use super::{text, Resp};
use crate::auth::credentials;

/// Paths a cross-origin page may read.
const READABLE: [&str; 3] = ["/sse", "/ws", "/topics"];

/// The headers a cross-origin request to these paths may carry (a preflight asks first).
const ALLOWED_HEADERS: &str = "authorization, last-event-id";

/// How long a browser may reuse a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The Origin to name in `Access-Control-Allow-Origin` for a request to `path`: the request's own,
/// when it is a browser's cross-origin request to a readable path and the allowlist lets it in.
pub(super) fn allowed_origin(
    allowed: &[String],
    path: &str,
    headers: &HeaderMap,
) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    (READABLE.contains(&path) && credentials::origin_allowed(allowed, headers))
        .then(|| origin.clone())
}

/// Adds the CORS headers naming `origin` to `resp`.
pub(super) fn expose(resp: &mut Resp, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    // The answer depends on the Origin: caches must not serve it to another one.
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

/// Answers a preflight (`OPTIONS`): 204 with what may be sent, or 403 for an origin or path that
/// may not read cross-origin.
pub(super) fn preflight(allowed: &[String], path: &str, headers: &HeaderMap) -> Resp {
    let Some(origin) = allowed_origin(allowed, path, headers) else {
        return text(StatusCode::FORBIDDEN, "cross-origin request not allowed\n");
    };
    let mut r = text(StatusCode::NO_CONTENT, "");
    expose(&mut r, origin);
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn only_allowed_origins_on_readable_paths_are_named() {
        let any: Vec<String> = Vec::new();
        let board = vec!["https://board.example".to_string()];
        let from_board = with_origin("https://board.example");
        let from_elsewhere = with_origin("https://evil.example");
        assert_eq!(
            allowed_origin(&any, "/sse", &from_elsewhere),
            Some(HeaderValue::from_static("https://evil.example"))
        );
        assert!(allowed_origin(&board, "/sse", &from_board).is_some());
        assert!(allowed_origin(&board, "/sse", &from_elsewhere).is_none());
        assert!(allowed_origin(&any, "/metrics", &from_board).is_none());
        assert!(allowed_origin(&any, "/sse", &HeaderMap::new()).is_none());
    }

    #[test]
    fn a_preflight_lists_what_may_be_sent_or_refuses() {
        let board = vec!["https://board.example".to_string()];
        let ok = preflight(&board, "/sse", &with_origin("https://board.example"));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let h = ok.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://board.example"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], ALLOWED_HEADERS);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let refused = preflight(&board, "/sse", &with_origin("https://evil.example"));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }
}
