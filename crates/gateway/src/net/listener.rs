//! Binding the listening socket every shard accepts from.

use std::net::SocketAddr;

use tokio::net::TcpSocket;

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
