//! What a request says about its client: the credential (from `Authorization: Bearer`, the
//! `Sec-WebSocket-Protocol` header or a `token` query parameter), whether it speaks our subprotocol,
//! and whether its `Origin` is allowed.
//!
//! Browsers cannot set headers on a WebSocket, so they send the token as a second subprotocol:
//! `Sec-WebSocket-Protocol: tickcast.v1, bearer.<token>`. The server answers with `tickcast.v1` only;
//! the token is never echoed.

use hyper::header::{HeaderMap, AUTHORIZATION, HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use hyper::Uri;

use super::{AuthError, Secret};

/// The subprotocol the server selects when a client offers it.
pub const SUBPROTOCOL: &str = "tickcast.v1";
/// Prefix of the subprotocol that carries a token.
const BEARER_SUBPROTOCOL: &str = "bearer.";

/// The offered subprotocols, trimmed (header lines that are not ASCII are skipped).
fn subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// True when the client offered [`SUBPROTOCOL`]; the 101 must then select it.
pub fn offers_subprotocol(headers: &HeaderMap) -> bool {
    subprotocols(headers).any(|p| p == SUBPROTOCOL)
}

/// Reads the credential. Precedence: `Authorization`, then the subprotocol, then the query; an
/// `Authorization` header of another scheme is an error rather than silently ignored.
pub fn credential(headers: &HeaderMap, uri: &Uri) -> Result<Option<Secret>, AuthError> {
    let from_protocol = subprotocols(headers).find_map(|p| p.strip_prefix(BEARER_SUBPROTOCOL));
    let token = match authorization(headers)?.or(from_protocol) {
        Some(t) => Some(t.to_string()),
        None => query_param(uri.query().unwrap_or(""), "token")?,
    };
    nonempty(token)
}

/// Reads the credential from `Authorization: Bearer` only. Publishing takes it from nowhere else:
/// a page on another site cannot set that header on a simple request (so no CSRF), and a token in
/// a URL ends up in proxy logs.
pub fn bearer(headers: &HeaderMap) -> Result<Option<Secret>, AuthError> {
    nonempty(authorization(headers)?.map(str::to_string))
}

/// The token of an `Authorization: Bearer` header, if there is one.
fn authorization(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(v) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization is not ASCII"))?;
    let (scheme, token) = v.trim().split_once(' ').unwrap_or((v, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "Authorization must use the Bearer scheme",
        ));
    }
    Ok(Some(token.trim()))
}

fn nonempty(token: Option<String>) -> Result<Option<Secret>, AuthError> {
    match token {
        Some(t) if t.is_empty() => Err(AuthError::Malformed("empty credential")),
        Some(t) => Ok(Some(Secret::new(t))),
        None => Ok(None),
    }
}

/// The percent-decoded value of the first `name=` parameter of `query`.
fn query_param(query: &str, name: &str) -> Result<Option<String>, AuthError> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return percent_decode(v).map(Some).ok_or(AuthError::Malformed(
                "bad percent-encoding in the token parameter",
            ));
        }
    }
    Ok(None)
}

/// Decodes `%XX` escapes (and `+` as a space, as forms send it); `None` if malformed or not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// True when `allowed` is empty, the request has no `Origin` (not a browser, so not a cross-site
/// hijack), or its `Origin` is in `allowed` (compared ASCII case-insensitively, as origins are).
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(ORIGIN) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|o| {
            allowed.iter().any(|a| {
                a.trim_end_matches('/')
                    .eq_ignore_ascii_case(o.trim_end_matches('/'))
            })
        }),
    }
}

/// [`origin_allowed`] for requests that change state (`POST /publish`): with an empty allowlist a
/// browser's request is still refused unless it comes from a page of this server (its `Origin`
/// names the `Host` it was sent to), so another site's page cannot publish through a visitor's
/// browser.
pub fn origin_allowed_to_write(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    if !allowed.is_empty() {
        return origin_allowed(allowed, headers);
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn cred(h: &HeaderMap, uri: &str) -> Option<String> {
        credential(h, &uri.parse().unwrap())
            .unwrap()
            .map(|s| s.expose().to_string())
    }

    #[test]
    fn finds_the_credential_everywhere() {
        let none = HeaderMap::new();
        assert_eq!(cred(&none, "/ws"), None);
        assert_eq!(
            cred(&headers(&[("authorization", "Bearer abc.def")]), "/ws"),
            Some("abc.def".into())
        );
        assert_eq!(
            cred(&headers(&[("authorization", "bearer  k1 ")]), "/ws"),
            Some("k1".into())
        );
        assert_eq!(
            cred(&none, "/ws?x=1&token=a%2Bb+c&token=no"),
            Some("a+b c".into())
        );
        let proto = headers(&[("sec-websocket-protocol", "tickcast.v1, bearer.tok.en.x")]);
        assert!(offers_subprotocol(&proto));
        assert_eq!(cred(&proto, "/ws"), Some("tok.en.x".into()));
        assert!(!offers_subprotocol(&none));
        // The header wins over the subprotocol, which wins over the query.
        let both = headers(&[
            ("authorization", "Bearer h"),
            ("sec-websocket-protocol", "bearer.p"),
        ]);
        assert_eq!(cred(&both, "/ws?token=q"), Some("h".into()));
        assert_eq!(
            cred(
                &headers(&[("sec-websocket-protocol", "bearer.p")]),
                "/ws?token=q"
            ),
            Some("p".into())
        );
        // Two header lines are read too.
        let two = headers(&[
            ("sec-websocket-protocol", "tickcast.v1"),
            ("sec-websocket-protocol", "bearer.t2"),
        ]);
        assert!(offers_subprotocol(&two));
        assert_eq!(cred(&two, "/ws"), Some("t2".into()));
    }

    #[test]
    fn refuses_malformed_credentials() {
        let uri: Uri = "/ws".parse().unwrap();
        let basic = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert!(matches!(
            credential(&basic, &uri),
            Err(AuthError::Malformed(_))
        ));
        let empty = headers(&[("authorization", "Bearer ")]);
        assert!(matches!(
            credential(&empty, &uri),
            Err(AuthError::Malformed(_))
        ));
        let bad_escape: Uri = "/ws?token=%zz".parse().unwrap();
        assert!(matches!(
            credential(&HeaderMap::new(), &bad_escape),
            Err(AuthError::Malformed(_))
        ));
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn origin_allowlist() {
        let allowed = vec!["https://board.example.com".to_string()];
        assert!(origin_allowed(
            &[],
            &headers(&[("origin", "https://evil.example")])
        ));
        assert!(origin_allowed(&allowed, &HeaderMap::new()));
        assert!(origin_allowed(
            &allowed,
            &headers(&[("origin", "https://Board.example.com")])
        ));
        assert!(!origin_allowed(
            &allowed,
            &headers(&[("origin", "https://evil.example")])
        ));
        assert!(!origin_allowed(&allowed, &headers(&[("origin", "null")])));
    }

    #[test]
    fn writes_need_the_servers_own_origin_or_an_allowed_one() {
        let host = ("host", "127.0.0.1:8080");
        assert!(origin_allowed_to_write(&[], &headers(&[host])), "curl");
        assert!(origin_allowed_to_write(
            &[],
            &headers(&[host, ("origin", "http://127.0.0.1:8080")])
        ));
        assert!(!origin_allowed_to_write(
            &[],
            &headers(&[host, ("origin", "https://evil.example")])
        ));
        assert!(!origin_allowed_to_write(
            &[],
            &headers(&[host, ("origin", "null")])
        ));
        let allowed = vec!["https://board.example.com".to_string()];
        assert!(origin_allowed_to_write(
            &allowed,
            &headers(&[host, ("origin", "https://board.example.com")])
        ));
        assert!(!origin_allowed_to_write(
            &allowed,
            &headers(&[host, ("origin", "http://127.0.0.1:8080")])
        ));
    }

    #[test]
    fn publishers_send_the_bearer_header_only() {
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        let h = headers(&[
            ("authorization", "Bearer k"),
            ("sec-websocket-protocol", "bearer.p"),
        ]);
        assert_eq!(bearer(&h).unwrap().unwrap().expose(), "k");
        let proto = headers(&[("sec-websocket-protocol", "bearer.p")]);
        assert_eq!(bearer(&proto).unwrap(), None);
    }
}
