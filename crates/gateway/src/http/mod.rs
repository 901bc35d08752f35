//! The HTTP surface of a connection: WebSocket upgrade at `/ws` ([`upgrade`]), the event stream
//! at `/sse` ([`sse`]), both admitted by [`admit`], `POST /publish` when
//! a publish handler is set ([`publish`]), health, readiness, topics and metrics ([`status`]), and
//! the embedded dashboard ([`assets`]); what a page of another origin may read of them ([`cors`]).
//!
//! Builds on the session layer (an upgrade starts a session) and never on the shard above it.

mod admit;
mod assets;
mod cors;
mod publish;
mod sse;
mod status;
mod upgrade;

use std::convert::Infallible;
use std::net::IpAddr;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tickcast_core::json;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::AuthError;
use crate::session::sse::SseStream;
use crate::session::ShardCtx;

/// A response body: a whole one, or an event stream (`/sse`).
type Body = Either<Full<Bytes>, Box<SseStream>>;
type Resp = Response<Body>;

/// A whole response body.
fn full(bytes: Bytes) -> Body {
    Either::Left(Full::new(bytes))
}

/// Serves HTTP/1.1 on one accepted connection (plain TCP, or TLS after its handshake) until it
/// closes or upgrades.
pub(crate) async fn serve<IO>(ctx: Rc<ShardCtx>, stream: IO, peer: Option<IpAddr>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let timeout = ctx.state.config.handshake_timeout;
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let ctx = svc_ctx.clone();
        async move {
            // The one route that reads a body, hence async; every other route is GET-only.
            if req.uri().path() == "/publish" {
                return Ok::<_, Infallible>(publish::publish(&ctx, req).await);
            }
            Ok::<_, Infallible>(route(&ctx, req, peer))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

fn route(ctx: &Rc<ShardCtx>, req: Request<Incoming>, peer: Option<IpAddr>) -> Resp {
    let allowed = &ctx.state.config.allowed_origins;
    if req.method() == Method::OPTIONS {
        return cors::preflight(allowed, req.uri().path(), req.headers());
    }
    let cross_origin = cors::allowed_origin(allowed, req.uri().path(), req.headers());
    let mut r = route_get(ctx, req, peer);
    if let Some(origin) = cross_origin {
        cors::expose(&mut r, origin);
    }
    r
}

fn route_get(ctx: &Rc<ShardCtx>, req: Request<Incoming>, peer: Option<IpAddr>) -> Resp {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
    }
    match req.uri().path() {
        "/ws" => upgrade::upgrade(ctx, req, peer),
        "/sse" => sse::sse(ctx, req, peer),
        "/healthz" => json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec()),
        "/readyz" => status::readyz(ctx),
        "/topics" => status::topics(ctx, &req),
        "/metrics" => status::metrics(ctx, &req),
        path => match assets::get(path) {
            Some(asset) => {
                let mut r = Response::new(full(Bytes::from_static(asset.body)));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(assets::CSP),
                );
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                r
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}
/// A refused upgrade (401 or 403): counted by reason, with a JSON body saying why.
pub(super) fn auth_refusal(ctx: &ShardCtx, status: StatusCode, e: &AuthError) -> Resp {
    ctx.state
        .metrics
        .auth_failures
        .with_label_values(&[e.reason()])
        .inc();
    let mut body = b"{\"error\":".to_vec();
    json::write_str(&mut body, e.reason());
    body.extend_from_slice(b",\"message\":");
    json::write_str(&mut body, &e.to_string());
    body.push(b'}');
    let mut r = json_response(status, body);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}
pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) fn text(status: StatusCode, msg: &str) -> Resp {
    let mut r = Response::new(full(Bytes::from(msg.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
