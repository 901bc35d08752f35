//! Binding the listener and running the gateway until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpSocket;

use crate::shard;
use crate::state::ServerState;

/// Binds `addr` with the configured backlog; the socket is ready for every shard to accept from.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Restarting on the same port must not wait for old connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(backlog)?;
    listener.into_std()
}

/// A bound gateway, ready to run.
pub struct Gateway {
    state: Arc<ServerState>,
    listener: std::net::TcpListener,
    shards: usize,
}

impl Gateway {
    /// Binds the configured address. Must be called inside a tokio runtime.
    pub fn bind(state: Arc<ServerState>) -> std::io::Result<Gateway> {
        let listener = bind(state.config.listen, state.config.backlog)?;
        let shards = state.bus.shard_count();
        Ok(Gateway {
            state,
            listener,
            shards,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs the shards until the shutdown token is cancelled and every shard has drained.
    pub async fn run(self) -> std::io::Result<()> {
        let mut handles = Vec::with_capacity(self.shards);
        for i in 0..self.shards {
            let listener = self.listener.try_clone()?;
            handles.push(shard::spawn(i, self.state.clone(), listener)?);
        }
        drop(self.listener);
        self.state.shutdown.cancelled().await;
        self.state.set_draining();
        // Joining blocks, so it runs off the async workers.
        let joined = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("a shard thread panicked");
        }
        Ok(())
    }
}
