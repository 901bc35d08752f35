//! `POST /publish`: who may publish (Origin, publish credential), the bounded body, and the
//! handler the binary installed.

use std::time::SystemTime;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};

use super::{auth_refusal, json_response, text, Resp};
use crate::auth::credentials;
use crate::auth::AuthError;
use crate::session::ShardCtx;

/// `POST /publish`: one JSON tick (`Content-Type: application/json`) or NDJSON lines for the HTTP
/// feed. 404 without an HTTP feed, 403 for another site's page, 401/403 without a publish
/// credential when auth is on, 413 over its `max_body_bytes`, else 200 with what was accepted.
pub(super) async fn publish(ctx: &ShardCtx, req: Request<Incoming>) -> Resp {
    let Some(hook) = ctx.state.publish_handler().cloned() else {
        return text(StatusCode::NOT_FOUND, "no http feed is configured\n");
    };
    if req.method() != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST a JSON tick or NDJSON tick lines here\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let config = &ctx.state.config;
    if !credentials::origin_allowed_to_write(&config.allowed_origins, req.headers()) {
        return auth_refusal(ctx, StatusCode::FORBIDDEN, &AuthError::Origin);
    }
    // Who may publish is decided before the body is read. Without auth anyone who can reach the
    // port may publish (the HTTP feed is opt-in); with it, only a publish credential, within its
    // topics.
    let scope = match &config.auth {
        None => None,
        Some(authenticator) => {
            let grant = credentials::bearer(req.headers())
                .and_then(|c| c.ok_or(AuthError::Missing))
                .and_then(|c| authenticator.authenticate_publisher(c.expose(), SystemTime::now()));
            match grant {
                Ok(scope) => Some(scope),
                Err(e) => {
                    let status = match e {
                        AuthError::NotPublisher | AuthError::PublishDisabled => {
                            StatusCode::FORBIDDEN
                        }
                        _ => StatusCode::UNAUTHORIZED,
                    };
                    return auth_refusal(ctx, status, &e);
                }
            }
        }
    };
    let limit = hook.max_body_bytes();
    let too_large = || {
        ctx.state
            .metrics
            .limit_rejections
            .with_label_values(&["max_body_bytes"])
            .inc();
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body is larger than {limit} bytes\n"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let single = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    // The header timeout does not cover the body: bound it with the same budget.
    let read = Limited::new(req.into_body(), limit).collect();
    let body = match tokio::time::timeout(ctx.state.config.handshake_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}\n"),
            )
        }
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body not received in time\n"),
    };
    // Parsing is in place: the body must be ours to scribble on (no copy when hyper's buffer is unique).
    let mut body = Vec::from(body);
    let report = match &scope {
        None => hook.publish(&mut body, single, &|_| true),
        Some(scope) => hook.publish(&mut body, single, &|t| scope.allows(t)),
    };
    json_response(StatusCode::OK, report)
}
