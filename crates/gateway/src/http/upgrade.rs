//! `GET /ws`: who may connect (Origin, credential, connection limits), the WebSocket handshake,
//! and handing the raw socket (plain or TLS) to a new session.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{auth_refusal, text, Resp};
use crate::auth::credentials;
use crate::auth::AuthError;
use crate::net::transport::Transport;
use crate::session::{self, SessionAuth, ShardCtx};
use crate::state::SlotRefused;

pub(super) fn upgrade(
    ctx: &Rc<ShardCtx>,
    mut req: Request<Incoming>,
    peer: Option<IpAddr>,
) -> Resp {
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
                return session::start(ctx, slot, auth, transport, parts.read_buf);
            }
            Err(other) => other,
        };
        match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
            Ok(parts) => {
                let (tcp, conn) = parts.io.into_inner().into_inner();
                let transport = Transport::tls(tcp, conn);
                session::start(ctx, slot, auth, transport, parts.read_buf)
            }
            Err(_) => tracing::error!("upgraded connection is neither TCP nor TLS over TCP"),
        }
    });
    response.map(|_| Full::new(Bytes::new()))
}
