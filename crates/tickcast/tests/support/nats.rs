//! [`NatsServer`]: a real `nats-server -js` (Debian's package) on a free loopback port, with its
//! store in a temp dir, for the scale-out and failover tests.

use std::net::TcpStream as StdTcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{
    feed_stats, feeds, free_port, start_server, wait_until, wait_until_blocking, Reaped,
    RunningServer, TempDir,
};

/// A `nats-server -js` on a loopback port with its store in a temp dir; killed on drop.
pub struct NatsServer {
    child: Reaped,
    port: u16,
    dir: TempDir,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let mut s = NatsServer {
            child: Reaped(None),
            port: free_port(),
            dir: TempDir::new("nats"),
        };
        s.spawn();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process on the same port and store; waits (bounded) until it accepts.
    pub fn spawn(&mut self) {
        let bin = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("nats-server installed (apt-get install nats-server; see .ci/test-all)");
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Reaped(Some(child));
        wait_until_blocking(
            &format!("nats-server listens on {}", self.port),
            Duration::from_secs(5),
            || StdTcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
    }

    /// Kills the process (the store stays, for [`NatsServer::spawn`]).
    pub fn kill(&mut self) {
        drop(std::mem::replace(&mut self.child, Reaped(None)));
    }

    /// Kills the process and deletes its store: the next [`NatsServer::spawn`] starts with no
    /// stream, as after losing the disk.
    pub fn kill_and_wipe(&mut self) {
        self.kill();
        std::fs::remove_dir_all(self.dir.path()).expect("remove the NATS store");
        std::fs::create_dir_all(self.dir.path()).expect("recreate the NATS store dir");
    }
}

/// A gateway node (in this process) fed by `nats`'s ingest tier on `tickcast.ticker.>`; returns once
/// its NATS feed is connected and warmed (ready).
pub async fn nats_gateway(nats: &NatsServer) -> RunningServer {
    nats_gateway_with(nats, |_| {}).await
}

/// [`nats_gateway`] with more settings of its config.
pub async fn nats_gateway_with(
    nats: &NatsServer,
    settings: impl FnOnce(&mut tickcast::Config),
) -> RunningServer {
    let toml = format!(
        "[[feeds]]\nkind = \"nats\"\nurl = \"{}\"\nsubjects = [\"tickcast.ticker.>\"]\n",
        nats.url()
    );
    let feeds = feeds(&toml);
    let g = start_server(|c| {
        c.feeds = feeds;
        settings(c);
    })
    .await;
    let stats = feed_stats(&g, "nats");
    wait_until("the gateway's NATS feed is connected", || stats.connected()).await;
    g
}
