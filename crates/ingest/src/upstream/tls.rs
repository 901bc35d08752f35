//! The upstream feed's transport: a TCP stream, wrapped in TLS for `wss://` URLs.
//!
//! TLS is rustls with the ring crypto provider chosen explicitly (no C crypto build, and no
//! process-wide default provider to install). The server's certificate is checked against the
//! system's root certificates (rustls-native-certs: the OS store, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set) plus, for a private CA, every PEM certificate of the feed's `ca_file`.
//! The name checked, and sent as SNI, is the URL's host (an IP address is checked against the
//! certificate's IP addresses, without SNI).
//!
//! Roots are loaded once, when the feed is built, so an unreadable or empty `ca_file` fails startup
//! naming the feed. A failed handshake (untrusted or expired certificate, name mismatch, no common
//! protocol) fails that connection attempt like a refused TCP connect: logged with its cause and
//! retried with backoff. After the handshake, `ws://` and `wss://` share one code path through
//! [`UpstreamStream`].

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Where an upstream URL connects to, and with which TLS settings (`None` for `ws://`).
pub(crate) struct Endpoint {
    /// The URL's host as written (IPv6 in brackets), for messages.
    host: String,
    /// The host to resolve (IPv6 without brackets).
    connect_host: String,
    port: u16,
    tls: Option<Tls>,
}

struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// What an upstream URL names, once checked: the rules of the `url` and `ca_file` keys, shared by
/// the feed's config validation and [`Endpoint::new`].
pub(crate) struct Target {
    /// The URL's host as written (IPv6 in brackets), for messages.
    host: String,
    /// The host to resolve (IPv6 without brackets).
    connect_host: String,
    port: u16,
    /// For `wss://`: the name the certificate must carry (and SNI).
    tls_name: Option<ServerName<'static>>,
}

impl Target {
    /// Checks that `url` is a `ws://` or `wss://` URL with a host (a TLS name for `wss://`), and
    /// that `ca_file`, if set, is a non-empty path used with `wss://`. The error is the key at
    /// fault and what is wrong with it.
    pub(crate) fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, (&'static str, String)> {
        let bad_url = |problem: String| ("url", problem);
        let request = url
            .into_client_request()
            .map_err(|e| bad_url(format!("{url:?}: {e}")))?;
        let uri = request.uri();
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad_url(format!("{url:?} must start with ws:// or wss://"))),
        };
        match ca_file {
            Some(_) if !secure => {
                let problem = format!("is only used with a wss:// url, and url is {url:?}");
                return Err(("ca_file", problem));
            }
            Some(p) if p.as_os_str().is_empty() => {
                let problem = "must not be empty (leave it out: system roots only)";
                return Err(("ca_file", problem.into()));
            }
            _ => {}
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad_url(format!("{url:?} has no host")))?
            .to_string();
        let connect_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls_name = if secure {
            let name = ServerName::try_from(connect_host.clone())
                .map_err(|e| bad_url(format!("{url:?}: host {host:?} is not a TLS name: {e}")))?;
            Some(name)
        } else {
            None
        };
        Ok(Self {
            host,
            connect_host,
            port,
            tls_name,
        })
    }
}

impl Endpoint {
    /// Parses a `ws://` or `wss://` URL (see [`Target::parse`]); for `wss://` also loads the
    /// trusted roots (the system's, plus `ca_file`). The error is a reason to show after the
    /// feed's name.
    pub(crate) fn new(feed: &str, url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let target =
            Target::parse(url, ca_file).map_err(|(field, problem)| format!("{field} {problem}"))?;
        let tls = match target.tls_name {
            None => None,
            Some(name) => {
                let config = client_config(feed, ca_file)?;
                Some(Tls {
                    connector: TlsConnector::from(Arc::new(config)),
                    name,
                })
            }
        };
        Ok(Self {
            host: target.host,
            connect_host: target.connect_host,
            port: target.port,
            tls,
        })
    }

    /// Connects TCP, then TLS for `wss://`. The caller bounds the time it may take.
    pub(crate) async fn connect(&self) -> Result<UpstreamStream, String> {
        let tcp = TcpStream::connect((self.connect_host.as_str(), self.port))
            .await
            .map_err(|e| format!("TCP connect to {}:{} failed: {e}", self.host, self.port))?;
        // Ticks are small frames: send each at once. Failing to set it only costs latency.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        let stream = tls
            .connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake with {} failed: {e}", self.host))?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }
}

/// The client TLS settings: ring, safe default protocol versions (TLS 1.2 and 1.3), the system's
/// roots plus `ca_file`'s certificates, no client certificate.
fn client_config(feed: &str, ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        // Some platform stores hold a few unreadable entries; the others are still usable.
        let errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
        tracing::warn!(
            feed,
            ?errors,
            "some system root certificates could not be loaded"
        );
    }
    let (system, unusable) = roots.add_parsable_certificates(native.certs);
    let mut private = 0usize;
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("ca_file {shown}: cannot read it: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {shown}: bad PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {shown}: unusable CA certificate: {e}"))?;
            private += 1;
        }
        if private == 0 {
            return Err(format!(
                "ca_file {shown}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
            ));
        }
    }
    if roots.is_empty() {
        return Err(
            "wss:// needs trusted root certificates: the system store has none \
                    (install ca-certificates, or set SSL_CERT_FILE) and no ca_file is set"
                .into(),
        );
    }
    tracing::debug!(
        feed,
        system,
        unusable,
        ca_file = private,
        "TLS roots loaded"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The upstream connection's byte stream: plain TCP (`ws://`) or TLS over TCP (`wss://`).
pub(crate) enum UpstreamStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("tickcast-ingest-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn urls_are_parsed_into_host_port_and_tls() {
        let e = Endpoint::new("f", "ws://127.0.0.1:9000/ws", None).unwrap();
        assert_eq!((e.connect_host.as_str(), e.port), ("127.0.0.1", 9000));
        assert!(e.tls.is_none());
        let e = Endpoint::new("f", "ws://[::1]/ws", None).unwrap();
        assert_eq!((e.host.as_str(), e.connect_host.as_str()), ("[::1]", "::1"));
        assert_eq!(e.port, 80);

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = temp("ca.pem", &cert.cert.pem());
        let e = Endpoint::new("f", "wss://localhost/ws", Some(&ca)).unwrap();
        assert_eq!(e.port, 443);
        let tls = e.tls.expect("wss uses TLS");
        assert_eq!(tls.name.to_str(), "localhost");
        let _ = std::fs::remove_file(ca);

        let err = |url: &str, ca: Option<&Path>| Endpoint::new("f", url, ca).err().unwrap();
        assert!(err("http://x/ws", None).contains("ws:// or wss://"));
        assert!(err("ws://x/ws", Some(Path::new("ca.pem"))).contains("only used with a wss://"));
        assert!(err("wss://x/ws", Some(Path::new(""))).contains("ca_file must not be empty"));
    }

    #[test]
    fn ca_file_problems_are_named() {
        let err = |ca: &Path| {
            Endpoint::new("f", "wss://localhost/ws", Some(ca))
                .err()
                .unwrap()
        };
        let missing = err(Path::new("/nonexistent/ca.pem"));
        assert!(
            missing.contains("/nonexistent/ca.pem") && missing.contains("cannot read"),
            "{missing}"
        );
        let empty = temp("empty.pem", "not a certificate\n");
        let msg = err(&empty);
        assert!(msg.contains("no PEM certificate"), "{msg}");
        let garbage = temp(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        );
        let msg = err(&garbage);
        assert!(msg.contains("unusable CA certificate"), "{msg}");
        let _ = std::fs::remove_file(empty);
        let _ = std::fs::remove_file(garbage);
    }
}
