//! Authentication at the WebSocket upgrade: API keys and JWTs (HS256, RS256), each granting topic
//! entitlements ([`Entitlements`]); and of publishers (`POST /publish`), whose right to publish is a
//! separate credential: a publish key, or a JWT's publish claim.
//!
//! Off unless the gateway config carries an [`Authenticator`]. A credential is first compared with the
//! configured API keys (in constant time, all of them); one shaped like a JWT is then verified with
//! the key of its `alg` (HS256 and RS256 keys are separate, so an RS256 public key can never be used
//! as an HMAC secret). The token's `exp` is required; the session keeps it and the shard sweep closes
//! the connection when it passes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

pub mod credentials;
pub mod entitlements;

use entitlements::{Entitlements, PatternError};

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A string that must not end up in logs: `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; use only to compare or to build a key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// One API key and the topic patterns it grants.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key, as clients send it.
    pub key: Secret,
    /// Topic glob patterns (`ticker.*`, `ticker.AAPL`).
    pub topics: Vec<String>,
}

/// What the authenticator is built from.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Accepted API keys.
    pub api_keys: Vec<ApiKey>,
    /// Keys that may publish (`POST /publish`) to the topics their patterns match; they grant no
    /// subscription, and read keys grant no publishing.
    pub publish_keys: Vec<ApiKey>,
    /// JWT claim holding the topic patterns a token may publish to (same forms as `topics_claim`);
    /// a token without it may not publish.
    pub publish_claim: String,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<Secret>,
    /// PEM public key (SPKI or PKCS#1) for RS256 tokens.
    pub rs256_public_key_pem: Option<Vec<u8>>,
    /// Claim holding the topic patterns: an array of strings or one space-separated string.
    pub topics_claim: String,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, at the upgrade and for live connections alike.
    pub leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            publish_keys: Vec::new(),
            publish_claim: "publish".into(),
            hs256_secret: None,
            rs256_public_key_pem: None,
            topics_claim: "topics".into(),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
        }
    }
}

/// Why an [`AuthConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Nothing to authenticate with.
    #[error("auth is enabled but no api key, hs256 secret or rs256 public key is configured")]
    NoMethod,
    /// An HS256 secret too short to be safe.
    #[error("the hs256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")]
    WeakSecret,
    /// An empty API key.
    #[error("api key #{0} is empty")]
    EmptyKey(usize),
    /// An empty publish key.
    #[error("publish key #{0} is empty")]
    EmptyPublishKey(usize),
    /// A publish key's patterns are invalid.
    #[error("publish key #{index}: {source}")]
    PublishKeyPatterns {
        /// Position in the list, from 0 (the key itself is never shown).
        index: usize,
        /// What was wrong.
        source: PatternError,
    },
    /// An API key's patterns are invalid.
    #[error("api key #{index}: {source}")]
    KeyPatterns {
        /// Position in the list, from 0 (the key itself is never shown).
        index: usize,
        /// What was wrong.
        source: PatternError,
    },
    /// The RS256 key is not a usable PEM RSA public key.
    #[error("the rs256 public key is not a PEM RSA public key: {0}")]
    BadPublicKey(String),
}

/// Why a connection was refused; [`reason`](AuthError::reason) is the metric label and JSON code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential in the request.
    #[error("no credential: send Authorization: Bearer, a token query parameter or the bearer.<token> subprotocol")]
    Missing,
    /// A credential was there but could not be read.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// Neither a known API key nor a JWT we can verify.
    #[error("unknown api key")]
    UnknownKey,
    /// A JWT that failed verification.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A JWT whose `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The request's `Origin` is not in the allowlist.
    #[error("origin not allowed")]
    Origin,
    /// A valid credential that grants no publishing (a read key, or a token without the publish
    /// claim).
    #[error(
        "this credential may not publish: use a publish key or a token with the publish claim"
    )]
    NotPublisher,
    /// Auth is on and no publish key or JWT key is configured, so nobody may publish.
    #[error("publishing is disabled: auth is on and no publish credential is configured")]
    PublishDisabled,
}

impl AuthError {
    /// Every reason label, for documentation and tests.
    pub const REASONS: [&'static str; 8] = [
        "missing_credentials",
        "malformed_credentials",
        "invalid_api_key",
        "invalid_token",
        "token_expired",
        "origin_not_allowed",
        "not_a_publisher",
        "publish_disabled",
    ];

    /// A bounded label: `tickcast_auth_failures_total{reason}` and the `error` field of the 401/403 body.
    pub fn reason(&self) -> &'static str {
        let i = match self {
            AuthError::Missing => 0,
            AuthError::Malformed(_) => 1,
            AuthError::UnknownKey => 2,
            AuthError::InvalidToken(_) => 3,
            AuthError::Expired => 4,
            AuthError::Origin => 5,
            AuthError::NotPublisher => 6,
            AuthError::PublishDisabled => 7,
        };
        Self::REASONS[i]
    }
}

/// What a verified credential grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Topics the connection may subscribe to.
    pub entitlements: Entitlements,
    /// When the connection must close (a JWT's `exp` plus leeway); `None` for API keys.
    pub expires_at: Option<SystemTime>,
    /// Topics the credential may publish to; `None` = it may not publish.
    pub publish: Option<Entitlements>,
}

/// Verifies credentials; built once at startup.
pub struct Authenticator {
    keys: Vec<(Secret, Entitlements)>,
    publish_keys: Vec<(Secret, Entitlements)>,
    publish_claim: String,
    hs256: Option<(DecodingKey, Validation)>,
    rs256: Option<(DecodingKey, Validation)>,
    topics_claim: String,
    leeway: Duration,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.keys.len())
            .field("publish_keys", &self.publish_keys.len())
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("topics_claim", &self.topics_claim)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl Authenticator {
    /// Checks and prepares `config`.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        if config.api_keys.is_empty()
            && config.publish_keys.is_empty()
            && config.hs256_secret.is_none()
            && config.rs256_public_key_pem.is_none()
        {
            return Err(AuthSetupError::NoMethod);
        }
        let mut keys = Vec::with_capacity(config.api_keys.len());
        for (index, k) in config.api_keys.iter().enumerate() {
            if k.key.expose().is_empty() {
                return Err(AuthSetupError::EmptyKey(index));
            }
            let e = Entitlements::new(&k.topics)
                .map_err(|source| AuthSetupError::KeyPatterns { index, source })?;
            keys.push((k.key.clone(), e));
        }
        let mut publish_keys = Vec::with_capacity(config.publish_keys.len());
        for (index, k) in config.publish_keys.iter().enumerate() {
            if k.key.expose().is_empty() {
                return Err(AuthSetupError::EmptyPublishKey(index));
            }
            let e = Entitlements::new(&k.topics)
                .map_err(|source| AuthSetupError::PublishKeyPatterns { index, source })?;
            publish_keys.push((k.key.clone(), e));
        }
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway.as_secs();
            v.validate_aud = config.audience.is_some();
            if let Some(aud) = &config.audience {
                v.set_audience(&[aud]);
            }
            if let Some(iss) = &config.issuer {
                v.set_issuer(&[iss]);
            }
            v
        };
        let hs256 = match &config.hs256_secret {
            Some(s) if s.expose().len() < MIN_HS256_SECRET_BYTES => {
                return Err(AuthSetupError::WeakSecret)
            }
            Some(s) => Some((
                DecodingKey::from_secret(s.expose().as_bytes()),
                validation(Algorithm::HS256),
            )),
            None => None,
        };
        let rs256 = match &config.rs256_public_key_pem {
            Some(pem) => Some((
                DecodingKey::from_rsa_pem(pem)
                    .map_err(|e| AuthSetupError::BadPublicKey(e.to_string()))?,
                validation(Algorithm::RS256),
            )),
            None => None,
        };
        Ok(Self {
            keys,
            publish_keys,
            publish_claim: config.publish_claim.clone(),
            hs256,
            rs256,
            topics_claim: config.topics_claim.clone(),
            leeway: config.leeway,
        })
    }

    /// Verifies `credential` (an API key or a JWT) as of `now`.
    pub fn authenticate(&self, credential: &str, now: SystemTime) -> Result<Grant, AuthError> {
        if let Some(e) = find_key(&self.keys, credential) {
            return Ok(Grant {
                entitlements: e.clone(),
                expires_at: None,
                publish: None,
            });
        }
        let jwt_shaped = credential.bytes().filter(|&b| b == b'.').count() == 2;
        if !jwt_shaped || (self.hs256.is_none() && self.rs256.is_none()) {
            return Err(AuthError::UnknownKey);
        }
        self.verify_jwt(credential, now)
    }

    /// Whether any credential could publish: a publish key, or a JWT key (whose tokens may carry
    /// the publish claim).
    pub fn can_publish(&self) -> bool {
        !self.publish_keys.is_empty() || self.hs256.is_some() || self.rs256.is_some()
    }

    /// Verifies a publisher's `credential` (a publish key, or a JWT with the publish claim) as of
    /// `now`, and returns the topics it may publish to.
    pub fn authenticate_publisher(
        &self,
        credential: &str,
        now: SystemTime,
    ) -> Result<Entitlements, AuthError> {
        if !self.can_publish() {
            return Err(AuthError::PublishDisabled);
        }
        if let Some(e) = find_key(&self.publish_keys, credential) {
            return Ok(e.clone());
        }
        self.authenticate(credential, now)?
            .publish
            .ok_or(AuthError::NotPublisher)
    }

    fn verify_jwt(&self, token: &str, now: SystemTime) -> Result<Grant, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| {
            AuthError::InvalidToken(format!("algorithm {:?} is not accepted", header.alg))
        })?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(e.to_string()),
            },
        )?;
        let claims = data.claims;
        // jsonwebtoken checked `exp` against the system clock; check it against ours too, so the
        // decision at the upgrade and the live-connection deadline agree.
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| AuthError::InvalidToken("\"exp\" must be a number".into()))?;
        let expires_at = UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e12)) + self.leeway;
        if expires_at <= now {
            return Err(AuthError::Expired);
        }
        let entitlements = topics_from_claim(claims.get(&self.topics_claim), &self.topics_claim)?;
        let publish = match claims.get(&self.publish_claim) {
            None | Some(Value::Null) => None,
            claim => Some(topics_from_claim(claim, &self.publish_claim)?),
        };
        Ok(Grant {
            entitlements,
            expires_at: Some(expires_at),
            publish,
        })
    }
}

/// Reads the topic patterns claim: an array of strings or one space-separated string (like OAuth's
/// `scope`). Absent means no topic at all.
fn topics_from_claim(v: Option<&Value>, name: &str) -> Result<Entitlements, AuthError> {
    let bad =
        || AuthError::InvalidToken(format!("claim {name:?} must be an array of topic patterns"));
    let patterns: Vec<&str> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    Entitlements::new(&patterns).map_err(|e| AuthError::InvalidToken(e.to_string()))
}

/// The entitlements of the key equal to `credential`. Every key is compared, without stopping at a
/// match, so timing tells nothing about which one matched.
fn find_key<'a>(keys: &'a [(Secret, Entitlements)], credential: &str) -> Option<&'a Entitlements> {
    let mut found = None;
    for (key, entitlements) in keys {
        if ct_eq(key.expose().as_bytes(), credential.as_bytes()) && found.is_none() {
            found = Some(entitlements);
        }
    }
    found
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq_str(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth() -> Authenticator {
        Authenticator::new(&AuthConfig {
            api_keys: vec![ApiKey {
                key: Secret::new("key-one"),
                topics: vec!["ticker.*".into()],
            }],
            publish_keys: vec![ApiKey {
                key: Secret::new("pub-one"),
                topics: vec!["ticker.A*".into()],
            }],
            hs256_secret: Some(Secret::new(SECRET)),
            leeway: Duration::ZERO,
            ..Default::default()
        })
        .unwrap()
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn secrets_are_masked() {
        let s = format!("{:?}", Secret::new("hunter2"));
        assert!(!s.contains("hunter2"), "{s}");
        let a = format!("{:?}", auth());
        assert!(!a.contains("key-one") && !a.contains(SECRET), "{a}");
    }

    #[test]
    fn api_keys_and_tokens() {
        let a = auth();
        let now = SystemTime::now();
        let g = a.authenticate("key-one", now).unwrap();
        assert!(g.entitlements.allows("ticker.AAPL") && g.expires_at.is_none());
        assert_eq!(
            a.authenticate("key-two", now).unwrap_err(),
            AuthError::UnknownKey
        );

        let t = hs(json!({"exp": now_secs() + 60, "topics": ["ticker.AAPL", "trade.*"]}));
        let g = a.authenticate(&t, now).unwrap();
        assert!(g.entitlements.allows("trade.X") && !g.entitlements.allows("ticker.MSFT"));
        assert!(g.expires_at.is_some());
        let t = hs(json!({"exp": now_secs() + 60, "topics": "ticker.A ticker.B"}));
        assert!(a
            .authenticate(&t, now)
            .unwrap()
            .entitlements
            .allows("ticker.B"));

        let expired = hs(json!({"exp": now_secs() - 10, "topics": []}));
        assert_eq!(
            a.authenticate(&expired, now).unwrap_err(),
            AuthError::Expired
        );
        let no_exp = hs(json!({"topics": []}));
        assert_eq!(
            a.authenticate(&no_exp, now).unwrap_err().reason(),
            "invalid_token"
        );
        let bad_claim = hs(json!({"exp": now_secs() + 60, "topics": [1]}));
        assert_eq!(
            a.authenticate(&bad_claim, now).unwrap_err().reason(),
            "invalid_token"
        );
        let mut tampered = hs(json!({"exp": now_secs() + 60}));
        tampered.pop();
        assert_eq!(
            a.authenticate(&tampered, now).unwrap_err().reason(),
            "invalid_token"
        );
    }

    #[test]
    fn publishing_needs_its_own_credential() {
        let a = auth();
        let now = SystemTime::now();
        let scope = a.authenticate_publisher("pub-one", now).unwrap();
        assert!(scope.allows("ticker.AAPL") && !scope.allows("ticker.MSFT"));
        // A publish key does not subscribe, and a read key does not publish.
        assert_eq!(
            a.authenticate("pub-one", now).unwrap_err(),
            AuthError::UnknownKey
        );
        assert_eq!(
            a.authenticate_publisher("key-one", now).unwrap_err(),
            AuthError::NotPublisher
        );
        let reader = hs(json!({"exp": now_secs() + 60, "topics": ["ticker.*"]}));
        assert_eq!(
            a.authenticate_publisher(&reader, now).unwrap_err(),
            AuthError::NotPublisher
        );
        let publisher = hs(json!({"exp": now_secs() + 60, "publish": ["trade.*"]}));
        assert!(a
            .authenticate_publisher(&publisher, now)
            .unwrap()
            .allows("trade.X"));
        assert_eq!(
            a.authenticate_publisher("nope", now).unwrap_err(),
            AuthError::UnknownKey
        );
        // Read keys only: nobody can publish.
        let readers_only = Authenticator::new(&AuthConfig {
            api_keys: vec![ApiKey {
                key: Secret::new("key-one"),
                topics: vec!["*".into()],
            }],
            ..Default::default()
        })
        .unwrap();
        assert!(!readers_only.can_publish());
        assert_eq!(
            readers_only
                .authenticate_publisher("key-one", now)
                .unwrap_err()
                .reason(),
            "publish_disabled"
        );
    }

    #[test]
    fn setup_is_checked() {
        assert!(matches!(
            Authenticator::new(&AuthConfig::default()),
            Err(AuthSetupError::NoMethod)
        ));
        assert!(matches!(
            Authenticator::new(&AuthConfig {
                hs256_secret: Some(Secret::new("short")),
                ..Default::default()
            }),
            Err(AuthSetupError::WeakSecret)
        ));
        assert!(matches!(
            Authenticator::new(&AuthConfig {
                rs256_public_key_pem: Some(b"not pem".to_vec()),
                ..Default::default()
            }),
            Err(AuthSetupError::BadPublicKey(_))
        ));
        assert_eq!(AuthError::Origin.reason(), "origin_not_allowed");
    }
}
