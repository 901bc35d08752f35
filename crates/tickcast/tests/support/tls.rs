//! Certificates made at test time (rcgen) and TLS connections that trust only them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::http::http_get_over;
use super::{RunningServer, TempDir, WAIT};

/// A self-signed certificate for `localhost` and 127.0.0.1, with `cert.pem` and `key.pem` written
/// to a fresh temp dir (removed on drop).
pub struct TestCert {
    dir: TempDir,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

impl TestCert {
    pub fn new(name: &str) -> TestCert {
        let dir = TempDir::new(&format!("tls-{name}"));
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("certificate");
        dir.write("cert.pem", &ck.cert.pem());
        dir.write("key.pem", &ck.key_pair.serialize_pem());
        TestCert {
            dir,
            der: ck.cert.der().clone(),
            key: ck.key_pair.serialize_der(),
        }
    }

    /// The certificate, PEM (a CA file for a client that should trust it).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The private key, PEM.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Serves a tickcast's https/wss with this certificate (`[tls]`).
    pub fn configure(&self, config: &mut tickcast::Config) {
        config.tls.cert_path = Some(self.cert_path());
        config.tls.key_path = Some(self.key_path());
    }

    /// A rustls client config that trusts this certificate and nothing else.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A TLS acceptor presenting this certificate, for a test server of our own.
    pub fn acceptor(&self) -> TlsAcceptor {
        let key = PrivateKeyDer::Pkcs8(self.key.clone().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A TLS connection to `addr` by the name `localhost`, trusting only `cert`.
pub async fn tls_connect(addr: SocketAddr, cert: &TestCert) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(cert.client_config()).connect(name, tcp),
    )
    .await
    .expect("TLS handshake in time")
    .expect("TLS handshake")
}

/// GET over https, trusting only `cert`: (status, body).
pub async fn https_get(server: &RunningServer, cert: &TestCert, path: &str) -> (u16, String) {
    let tls = tls_connect(server.addr(), cert).await;
    let (status, _, body) = http_get_over(tls, "localhost", path).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}
