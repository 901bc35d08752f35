//! The HTTP surface of a connection: WebSocket upgrade at `/ws`, health, readiness, topic listing,
//! metrics, the embedded dashboard, and `POST /publish` when an HTTP feed is configured.

use std::convert::Infallible;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tickcast_core::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::auth::AuthError;
use crate::connection::SessionAuth;
use crate::credentials;
use crate::shard::ShardCtx;
use crate::state::SlotRefused;
use crate::transport::Transport;

type Resp = Response<Full<Bytes>>;

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
                return Ok::<_, Infallible>(publish(&ctx, req).await);
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
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
    }
    match req.uri().path() {
        "/ws" => upgrade(ctx, req, peer),
        "/healthz" => json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec()),
        "/readyz" => readyz(ctx),
        "/topics" => topics(ctx, &req),
        "/metrics" => {
            if let Some(expected) = &ctx.state.config.metrics_token {
                let ok = credentials::bearer(req.headers()).is_ok_and(|c| {
                    c.is_some_and(|c| crate::auth::ct_eq_str(c.expose(), expected.expose()))
                });
                if !ok {
                    return auth_refusal(ctx, StatusCode::UNAUTHORIZED, &AuthError::UnknownKey);
                }
            }
            let body = ctx.state.metrics.render(&ctx.state.bus);
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        path => match crate::assets::get(path) {
            Some(asset) => {
                let mut r = Response::new(Full::new(Bytes::from_static(asset.body)));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(crate::assets::CSP),
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

fn upgrade(ctx: &Rc<ShardCtx>, mut req: Request<Incoming>, peer: Option<IpAddr>) -> Resp {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket\n",
        );
    }
    if ctx.state.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n");
    }
    // Who may connect is decided before a session slot is taken, so refused clients hold none.
    let config = &ctx.state.config;
    if !credentials::origin_allowed(&config.allowed_origins, req.headers()) {
        return auth_refusal(ctx, StatusCode::FORBIDDEN, &AuthError::Origin);
    }
    let auth = match &config.auth {
        None => SessionAuth::default(),
        Some(authenticator) => {
            let grant = credentials::credential(req.headers(), req.uri())
                .and_then(|c| c.ok_or(AuthError::Missing))
                .and_then(|c| authenticator.authenticate(c.expose(), SystemTime::now()));
            match grant {
                Ok(g) => SessionAuth {
                    entitlements: Some(g.entitlements),
                    // The sweep works with Instants: turn the wall-clock deadline into one now.
                    expires_at: g.expires_at.map(|at| {
                        Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
                    }),
                },
                Err(e) => return auth_refusal(ctx, StatusCode::UNAUTHORIZED, &e),
            }
        }
    };
    let slot = match ctx.state.try_open_session(peer) {
        Ok(slot) => slot,
        Err(refused) => {
            let (limit, status, msg) = match refused {
                SlotRefused::Global => (
                    "max_connections",
                    StatusCode::SERVICE_UNAVAILABLE,
                    "connection limit reached\n",
                ),
                SlotRefused::PerIp => (
                    "max_connections_per_ip",
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many connections from your address\n",
                ),
            };
            ctx.state
                .metrics
                .limit_rejections
                .with_label_values(&[limit])
                .inc();
            return text(status, msg);
        }
    };
    let subprotocol = credentials::offers_subprotocol(req.headers());
    let (mut response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("bad WebSocket handshake: {e}\n"),
            )
        }
    };
    if subprotocol {
        // Select ours; a `bearer.<token>` the client also offered is never echoed.
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(credentials::SUBPROTOCOL),
        );
    }
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        let ws = match upgrade.await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        // Take the raw socket (and its TLS state) back: we write pre-encoded frames ourselves.
        // The session is a task of its own, so it does not carry this handshake task's state.
        let upgraded = ws.into_inner().into_inner();
        let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let transport = Transport::plain(parts.io.into_inner());
                return crate::connection::start(ctx, slot, auth, transport, parts.read_buf);
            }
            Err(other) => other,
        };
        match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
            Ok(parts) => {
                let (tcp, conn) = parts.io.into_inner().into_inner();
                let transport = Transport::tls(tcp, conn);
                crate::connection::start(ctx, slot, auth, transport, parts.read_buf)
            }
            Err(_) => tracing::error!("upgraded connection is neither TCP nor TLS over TCP"),
        }
    });
    response.map(|_| Full::new(Bytes::new()))
}

/// A refused upgrade (401 or 403): counted by reason, with a JSON body saying why.
fn auth_refusal(ctx: &ShardCtx, status: StatusCode, e: &AuthError) -> Resp {
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

/// `POST /publish`: one JSON tick (`Content-Type: application/json`) or NDJSON lines for the HTTP
/// feed. 404 without an HTTP feed, 403 for another site's page, 401/403 without a publish
/// credential when auth is on, 413 over its `max_body_bytes`, else 200 with what was accepted.
async fn publish(ctx: &ShardCtx, req: Request<Incoming>) -> Resp {
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

fn readyz(ctx: &ShardCtx) -> Resp {
    match ctx.state.readiness() {
        Ok(()) => json_response(StatusCode::OK, b"{\"ready\":true}".to_vec()),
        Err(reasons) => {
            let mut body = b"{\"ready\":false,\"reasons\":[".to_vec();
            for (i, r) in reasons.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                json::write_str(&mut body, r);
            }
            body.extend_from_slice(b"]}");
            json_response(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

/// Every topic that has data, as its latest tick (the tick JSON itself). With auth on it needs a
/// credential, as `/ws` does, and lists only the topics that credential is entitled to.
fn topics(ctx: &ShardCtx, req: &Request<Incoming>) -> Resp {
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

fn json_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, msg: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(msg.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
