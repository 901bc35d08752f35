//! Where the load goes: the server's WebSocket URL, the feed address, and the local source
//! addresses, all restricted to loopback so the tool cannot be pointed at someone else's host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A target or source address that is not allowed or not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Only plain `ws://` is spoken.
    #[error("unsupported URL {0:?}: expected ws://HOST:PORT/PATH")]
    Scheme(String),
    /// Host is not an IP literal or `localhost`.
    #[error("host {0:?} must be a loopback IP address or localhost")]
    Host(String),
    /// Port missing or not a number.
    #[error("bad port in {0:?}")]
    Port(String),
    /// The address is outside 127.0.0.0/8 and ::1.
    #[error(
        "refusing non-loopback address {0}: tickcast-loadgen only drives servers on this host"
    )]
    NotLoopback(IpAddr),
}

/// A parsed `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsTarget {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value (as written in the URL).
    pub host: String,
    /// Request path, e.g. `/ws`.
    pub path: String,
}

impl WsTarget {
    /// Parses `ws://HOST[:PORT][/PATH]`; HOST must be loopback.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let (hostport, path) = match rest.find('/') {
            Some(p) => (&rest[..p], &rest[p..]),
            None => (rest, "/"),
        };
        let addr = parse_host_port(hostport, Some(80))?;
        Ok(Self {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
        })
    }

    /// The URL again, for messages.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.host, self.path)
    }
}

/// Parses `HOST:PORT` (or `[::1]:PORT`); without a port, `default_port` is used if given.
pub fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<SocketAddr, TargetError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| TargetError::Host(s.to_string()))?;
        (h, p.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| TargetError::Port(s.to_string()))?,
        None => default_port.ok_or_else(|| TargetError::Port(s.to_string()))?,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| TargetError::Host(host.to_string()))?
    };
    check_loopback(ip)?;
    Ok(SocketAddr::new(ip, port))
}

/// Accepts only 127.0.0.0/8 and ::1.
pub fn check_loopback(ip: IpAddr) -> Result<(), TargetError> {
    if ip.is_loopback() {
        Ok(())
    } else {
        Err(TargetError::NotLoopback(ip))
    }
}

/// Parses a source address list such as `127.0.0.1,127.0.0.2`; every entry must be loopback.
pub fn parse_src_ips(list: &[String]) -> Result<Vec<IpAddr>, TargetError> {
    list.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let ip: IpAddr = s.parse().map_err(|_| TargetError::Host(s.to_string()))?;
            check_loopback(ip)?;
            Ok(ip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = WsTarget::parse("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/ws");
        assert_eq!(t.host, "127.0.0.1:8080");
        let t = WsTarget::parse("ws://localhost").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        let t = WsTarget::parse("ws://[::1]:9/x").unwrap();
        assert_eq!(t.addr, "[::1]:9".parse().unwrap());
        assert!(WsTarget::parse("ws://127.5.6.7:1/ws").is_ok());
    }

    #[test]
    fn refuses_remote_and_odd_urls() {
        assert!(matches!(
            WsTarget::parse("ws://10.0.0.1:80/ws"),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(matches!(
            WsTarget::parse("ws://example.com/ws"),
            Err(TargetError::Host(_))
        ));
        assert!(matches!(
            WsTarget::parse("wss://127.0.0.1/ws"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            WsTarget::parse("ws://127.0.0.1:99999/ws"),
            Err(TargetError::Port(_))
        ));
        assert!(parse_host_port("127.0.0.1", None).is_err());
    }

    #[test]
    fn parses_src_ips() {
        let v = parse_src_ips(&["127.0.0.1, 127.0.0.2".into(), "127.0.0.3".into()]).unwrap();
        assert_eq!(v.len(), 3);
        assert!(parse_src_ips(&["192.168.1.1".into()]).is_err());
    }
}
