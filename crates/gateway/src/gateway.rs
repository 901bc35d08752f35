//! The gateway as a whole: bind the listener, start one shard per bus shard, and run until the
//! shutdown token is cancelled and every shard has drained.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::net::listener::bind;
use crate::shard;
use crate::state::ServerState;

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
