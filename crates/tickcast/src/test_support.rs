//! The one helper integration tests use to run a real tickcast on a free loopback port.

use std::net::SocketAddr;

use crate::config::{Config, Overrides};
use crate::server::{start, Running};

/// A server started for a test; shut it down with [`RunningServer::shutdown`] (dropping it also stops it).
pub struct RunningServer {
    running: Option<Running>,
    addr: SocketAddr,
}

impl RunningServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The running server (state, metrics, bus).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// Gracefully stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }
}

/// Starts a server on `127.0.0.1:0` with two shards and a small default feed, after `configure` has
/// adjusted the config (then resolved: an invalid config panics).
pub async fn start_server(configure: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::default();
    config.server.workers = 2;
    config
        .apply(Overrides {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Default::default()
        })
        .expect("valid overrides");
    configure(&mut config);
    let settings = config.resolve().expect("valid config");
    let running = start(settings).await.expect("server starts");
    let addr = running.addr();
    RunningServer {
        running: Some(running),
        addr,
    }
}
