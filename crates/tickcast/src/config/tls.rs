//! `[tls]`: https/wss on the listener. The certificate and key are loaded once, when the config is
//! resolved, so a bad file fails before anything binds.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tickcast_gateway::GatewayConfig;

use super::ConfigError;

/// `[tls]`: serve https/wss when both paths are set; plain http/ws otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_path: Option<PathBuf>,
    /// PEM private key of the leaf certificate.
    pub key_path: Option<PathBuf>,
}

impl TlsSection {
    /// The rustls config, if TLS is on; fails when the files cannot be used.
    pub fn server_config(
        &self,
    ) -> Result<Option<Arc<tickcast_gateway::tls::ServerConfig>>, ConfigError> {
        match (&self.cert_path, &self.key_path) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => tickcast_gateway::tls_server_config(cert, key)
                .map(Some)
                .map_err(|e| ConfigError::Invalid(format!("tls: {e}"))),
            _ => Err(ConfigError::Invalid(
                "tls: set both cert_path and key_path, or neither".into(),
            )),
        }
    }

    /// Loads the certificate and key into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) -> Result<(), ConfigError> {
        g.tls = self.server_config()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn both_files_or_neither() {
        let resolve = |toml: &str| Config::from_toml(toml).and_then(Config::resolve);
        assert!(resolve("[tls]").unwrap().gateway.tls.is_none());
        match resolve("[tls]\ncert_path = \"cert.pem\"") {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("set both"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve(
            "[tls]\ncert_path = \"/nonexistent/c.pem\"\nkey_path = \"/nonexistent/k.pem\"",
        ) {
            Err(ConfigError::Invalid(m)) => assert!(m.starts_with("tls: "), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
