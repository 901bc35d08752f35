//! `[auth]`: credentials, topic entitlements, publish keys, the `/metrics` token and the Origin
//! allowlist. Defaults are the gateway's ([`AuthConfig::default`]); the gateway's
//! [`Authenticator`] checks the keys and secrets, built once when the config is resolved (which is
//! when the RS256 key file is read).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tickcast_gateway::auth::{ApiKey, AuthConfig, Authenticator, Secret};
use tickcast_gateway::GatewayConfig;

use super::ConfigError;

/// Shortest `metrics_token` accepted.
const MIN_METRICS_TOKEN_BYTES: usize = 16;

/// `[auth]`: off unless `enabled`; `allowed_origins` applies either way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Require a credential (API key or JWT) at the WebSocket upgrade.
    pub enabled: bool,
    /// Accepted API keys and what each grants.
    pub api_keys: Vec<ApiKeySection>,
    /// Keys that may `POST /publish`, each with the topic patterns it may publish to.
    pub publish_keys: Vec<ApiKeySection>,
    /// JWT claim holding the topic patterns a token may publish to.
    pub publish_claim: String,
    /// When set, `/metrics` needs `Authorization: Bearer <this>`, whether or not `enabled` is.
    pub metrics_token: Option<Secret>,
    /// Shared secret for HS256 JWTs (at least 32 bytes).
    pub hs256_secret: Option<Secret>,
    /// PEM file with the RSA public key for RS256 JWTs.
    pub rs256_public_key_file: Option<PathBuf>,
    /// JWT claim holding the topic patterns.
    pub topics_claim: String,
    /// Required JWT `iss`, if set.
    pub issuer: Option<String>,
    /// Required JWT `aud`, if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, in seconds.
    pub leeway_secs: u64,
    /// Browser origins allowed to open a WebSocket; empty = any.
    pub allowed_origins: Vec<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        let a = AuthConfig::default();
        Self {
            enabled: false,
            api_keys: Vec::new(),
            publish_keys: Vec::new(),
            publish_claim: a.publish_claim,
            metrics_token: None,
            hs256_secret: None,
            rs256_public_key_file: None,
            topics_claim: a.topics_claim,
            issuer: None,
            audience: None,
            leeway_secs: a.leeway.as_secs(),
            allowed_origins: Vec::new(),
        }
    }
}

/// One `[[auth.api_keys]]` or `[[auth.publish_keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// The key as clients send it (masked in logs).
    pub key: Secret,
    /// Topic glob patterns it grants (`*` is the only wildcard).
    pub topics: Vec<String>,
}

impl AuthSection {
    /// Checks what the authenticator does not: the claim names and the metrics token.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topics_claim.is_empty() || self.publish_claim.is_empty() {
            return Err(ConfigError::Invalid(
                "auth.topics_claim and auth.publish_claim must not be empty".into(),
            ));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < MIN_METRICS_TOKEN_BYTES)
        {
            return Err(ConfigError::Invalid(format!(
                "auth.metrics_token must be at least {MIN_METRICS_TOKEN_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// The authenticator, or `None` when auth is off. Reads the RS256 key file; the
    /// authenticator checks keys, patterns and secrets.
    pub fn authenticator(&self) -> Result<Option<Arc<Authenticator>>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let rs256_public_key_pem = match &self.rs256_public_key_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|error| ConfigError::Read {
                path: path.display().to_string(),
                error,
            })?),
        };
        let keys = |list: &[ApiKeySection]| {
            list.iter()
                .map(|k| ApiKey {
                    key: k.key.clone(),
                    topics: k.topics.clone(),
                })
                .collect()
        };
        let config = AuthConfig {
            api_keys: keys(&self.api_keys),
            publish_keys: keys(&self.publish_keys),
            publish_claim: self.publish_claim.clone(),
            hs256_secret: self.hs256_secret.clone(),
            rs256_public_key_pem,
            topics_claim: self.topics_claim.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
        };
        Authenticator::new(&config)
            .map(|a| Some(Arc::new(a)))
            .map_err(|e| ConfigError::Invalid(format!("auth: {e}")))
    }

    /// Checks the section, builds the authenticator (the one read of the RS256 key file) and
    /// writes the gateway settings this section holds into `g`.
    pub(super) fn configure(self, g: &mut GatewayConfig) -> Result<(), ConfigError> {
        self.validate()?;
        g.auth = self.authenticator()?;
        g.allowed_origins = self.allowed_origins;
        g.metrics_token = self.metrics_token;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn auth_and_rate_limits_parse_and_are_checked() {
        let c = Config::from_toml(
            r#"
            [limits]
            max_connections_per_ip = 8
            max_messages_per_second = 5
            [auth]
            enabled = true
            hs256_secret = "0123456789abcdef0123456789abcdef"
            allowed_origins = ["https://board.example"]
            [[auth.api_keys]]
            key = "k-123"
            topics = ["ticker.*"]
            "#,
        )
        .unwrap();
        let g = c.clone().resolve().unwrap().gateway;
        assert_eq!(g.max_connections_per_ip, 8);
        assert_eq!(g.rate_limit.per_second, 5);
        assert!(g.auth.is_some());
        assert_eq!(g.allowed_origins, ["https://board.example"]);
        let shown = format!("{c:?} {g:?}");
        assert!(
            !shown.contains("k-123") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
        assert!(Config::default().resolve().unwrap().gateway.auth.is_none());

        let invalid = |toml: &str| match Config::from_toml(toml).and_then(Config::resolve) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        };
        assert!(invalid("[auth]\nenabled = true").contains("no api key"));
        assert!(invalid("[auth]\nenabled = true\nhs256_secret = \"short\"").contains("32 bytes"));
        assert!(invalid(
            "[auth]\nenabled = true\n[[auth.api_keys]]\nkey = \"k\"\ntopics = [\"bad topic\"]"
        )
        .contains("api key #0"));
        assert!(matches!(
            Config::from_toml(
                "[auth]\nenabled = true\nrs256_public_key_file = \"/nonexistent.pem\""
            )
            .and_then(Config::resolve),
            Err(ConfigError::Read { .. })
        ));
        assert!(invalid("[auth]\ntopics_claim = \"\"").contains("topics_claim"));
        assert!(invalid("[auth]\nmetrics_token = \"short\"").contains("at least 16 bytes"));
    }

    #[test]
    fn the_rs256_key_file_is_read_once_when_resolving() {
        let dir = std::env::temp_dir().join(format!("tickcast-cfg-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("rs256.pem");
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwt_rs256_public.pem"
        );
        std::fs::copy(fixture, &pem).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[auth]\nenabled = true\nrs256_public_key_file = \"rs256.pem\"\n",
        )
        .unwrap();
        // Loading the file does not read the key: a key removed before resolving is reported then.
        let c = Config::from_file(&file).unwrap();
        assert_eq!(c.auth.rs256_public_key_file.as_deref(), Some(&*pem));
        let settings = c.clone().resolve().unwrap();
        assert!(settings.gateway.auth.is_some());
        std::fs::remove_file(&pem).unwrap();
        assert!(matches!(c.resolve(), Err(ConfigError::Read { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
