//! Admitting an accepted connection: socket options, the TLS handshake when the listener serves
//! TLS (bounded by the handshake timeout), then HTTP on the stream.

use std::rc::Rc;

use crate::session::ShardCtx;

/// Sets up an accepted connection and starts serving HTTP on it.
pub(super) fn admit(ctx: &Rc<ShardCtx>, stream: tokio::net::TcpStream) {
    ctx.state.metrics.connections_accepted.inc();
    // Ticks are small and latency-sensitive; never wait for Nagle.
    let _ = stream.set_nodelay(true);
    if let Some(size) = ctx.state.config.socket_send_buffer {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    match &ctx.state.config.tls {
        None => {
            tokio::task::spawn_local(crate::http::serve(ctx.clone(), stream, peer));
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
            tokio::task::spawn_local(serve_tls(ctx.clone(), acceptor, stream, peer));
        }
    }
}

/// Completes the TLS handshake (bounded by the handshake timeout, like a slow HTTP head), then
/// serves HTTP on the encrypted stream.
async fn serve_tls(
    ctx: Rc<ShardCtx>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: Option<std::net::IpAddr>,
) {
    let timeout = ctx.state.config.handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => crate::http::serve(ctx, tls, peer).await,
        Ok(Err(e)) => {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!("TLS handshake timed out");
        }
    }
}
