//! Who may open a stream, whatever the transport (`/ws`, `/sse`): the Origin allowlist, the
//! credential and its entitlements, and a connection slot within the global and per-IP limits.
//! Decided before a slot is taken, so refused clients hold none.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::{auth_refusal, text, Resp};
use crate::auth::credentials;
use crate::auth::AuthError;
use crate::session::{SessionAuth, ShardCtx};
use crate::state::{SessionSlot, SlotRefused, Wire};

/// The slot and grant of an admitted client, or the response (boxed: it is large) that refuses it (403 Origin, 401
/// credential, 503 / 429 connection limits), counted in the metrics.
pub(super) fn admit(
    ctx: &Rc<ShardCtx>,
    req: &Request<Incoming>,
    peer: Option<IpAddr>,
    transport: Wire,
) -> Result<(SessionSlot, SessionAuth), Box<Resp>> {
    let config = &ctx.state.config;
    if !credentials::origin_allowed(&config.allowed_origins, req.headers()) {
        return Err(Box::new(auth_refusal(
            ctx,
            StatusCode::FORBIDDEN,
            &AuthError::Origin,
        )));
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
                Err(e) => return Err(Box::new(auth_refusal(ctx, StatusCode::UNAUTHORIZED, &e))),
            }
        }
    };
    match ctx.state.try_open_session(peer, transport) {
        Ok(slot) => Ok((slot, auth)),
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
            Err(Box::new(text(status, msg)))
        }
    }
}
