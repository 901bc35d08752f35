//! The read-only routes operators and dashboards poll: `/readyz`, `/topics` and `/metrics`.

use std::time::SystemTime;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tickcast_core::json;

use super::{auth_refusal, full, json_response, Resp};
use crate::auth::credentials;
use crate::auth::AuthError;
use crate::session::ShardCtx;

/// `/metrics`: the Prometheus text format; with `metrics_token` set, only for its bearer.
pub(super) fn metrics(ctx: &ShardCtx, req: &Request<Incoming>) -> Resp {
    if let Some(expected) = &ctx.state.config.metrics_token {
        let ok = credentials::bearer(req.headers()).is_ok_and(|c| {
            c.is_some_and(|c| crate::auth::ct_eq_str(c.expose(), expected.expose()))
        });
        if !ok {
            return auth_refusal(ctx, StatusCode::UNAUTHORIZED, &AuthError::UnknownKey);
        }
    }
    let body = ctx.state.metrics.render(&ctx.state.bus);
    let mut r = Response::new(full(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Ready or not, with the reasons; and the books that cannot be trusted until their feed sends a
/// snapshot (they do not make the server unready: every other topic is served).
pub(super) fn readyz(ctx: &ShardCtx) -> Resp {
    let untrusted = ctx.state.bus.untrusted_books();
    let strings = |body: &mut Vec<u8>, list: &mut dyn Iterator<Item = &str>| {
        for (i, r) in list.enumerate() {
            if i > 0 {
                body.push(b',');
            }
            json::write_str(body, r);
        }
    };
    let (status, mut body) = match ctx.state.readiness() {
        Ok(()) => (StatusCode::OK, b"{\"ready\":true".to_vec()),
        Err(reasons) => {
            let mut body = b"{\"ready\":false,\"reasons\":[".to_vec();
            strings(&mut body, &mut reasons.iter().map(String::as_str));
            body.push(b']');
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
    };
    if !untrusted.is_empty() {
        body.extend_from_slice(b",\"untrusted_books\":[");
        strings(&mut body, &mut untrusted.iter().map(|t| t.as_str()));
        body.push(b']');
    }
    body.push(b'}');
    json_response(status, body)
}

/// Every topic that has data, as its latest tick (the tick JSON itself). With auth on it needs a
/// credential, as `/ws` does, and lists only the topics that credential is entitled to.
pub(super) fn topics(ctx: &ShardCtx, req: &Request<Incoming>) -> Resp {
    let entitlements = match &ctx.state.config.auth {
        None => None,
        Some(authenticator) => {
            let grant = credentials::credential(req.headers(), req.uri())
                .and_then(|c| c.ok_or(AuthError::Missing))
                .and_then(|c| authenticator.authenticate(c.expose(), SystemTime::now()));
            match grant {
                Ok(g) => Some(g.entitlements),
                Err(e) => return auth_refusal(ctx, StatusCode::UNAUTHORIZED, &e),
            }
        }
    };
    let mut body = b"{\"topics\":[".to_vec();
    let mut first = true;
    for t in ctx.state.bus.snapshot() {
        // A topic clients asked for that no feed has published yet has nothing to show.
        let Some(frame) = &t.last else { continue };
        if entitlements
            .as_ref()
            .is_some_and(|e| !e.allows(t.topic.as_str()))
        {
            continue;
        }
        if !first {
            body.push(b',');
        }
        first = false;
        body.extend_from_slice(frame.payload());
    }
    body.extend_from_slice(b"]}");
    json_response(StatusCode::OK, body)
}
