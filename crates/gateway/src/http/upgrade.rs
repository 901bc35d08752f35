//! `GET /ws`: who may connect (Origin, credential, connection limits), the WebSocket handshake,
//! and handing the raw socket (plain or TLS) to a new session.

use std::net::IpAddr;
use std::rc::Rc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::admit::admit;
use super::{full, text, Resp};
use crate::auth::credentials;
use crate::net::transport::Transport;
use crate::session::{self, ShardCtx};
use crate::state::Wire;

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
    let (slot, auth) = match admit(ctx, &req, peer, Wire::Ws) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
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
    response.map(|_| full(Bytes::new()))
}
