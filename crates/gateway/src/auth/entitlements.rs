//! Topic entitlements: the glob patterns an API key or a token's claim grants, and the tiny matcher
//! behind them.
//!
//! Patterns know one wildcard, `*`, matching any run of characters (dots included, so `ticker.*`
//! covers every ticker and `*` covers everything). Everything else matches itself, case-sensitively,
//! like topic names do.

use std::sync::Arc;

/// Most patterns one grant may carry; more is refused rather than matched against every subscribe.
pub const MAX_PATTERNS: usize = 1024;
/// Longest pattern accepted.
pub const MAX_PATTERN_BYTES: usize = 256;

/// True when `text` matches `pattern`, where `*` matches any (possibly empty) run of bytes.
///
/// The classic greedy matcher with one backtrack point: on a mismatch after a `*`, that star absorbs
/// one more byte and matching resumes. It never recurses and is O(pattern × text) at worst, which for
/// 64-byte topics and bounded patterns is a few thousand steps.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last star was and which text position it is currently absorbing up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Why a set of patterns was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// More than [`MAX_PATTERNS`].
    #[error("more than {MAX_PATTERNS} topic patterns")]
    TooMany,
    /// Empty, longer than [`MAX_PATTERN_BYTES`] or with characters no topic can have.
    #[error("invalid topic pattern {0:?}: use topic characters (letters, digits, ._:-) and *")]
    Invalid(String),
}

/// The topics one connection may subscribe to. Cheap to clone (shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlements {
    patterns: Arc<[Box<str>]>,
}

impl Entitlements {
    /// Validates `patterns` (see [`PatternError`]).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        if patterns.len() > MAX_PATTERNS {
            return Err(PatternError::TooMany);
        }
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.as_ref();
            let valid = !p.is_empty()
                && p.len() <= MAX_PATTERN_BYTES
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-*".contains(&b));
            if !valid {
                return Err(PatternError::Invalid(p.chars().take(80).collect()));
            }
            out.push(Box::from(p));
        }
        Ok(Self {
            patterns: out.into(),
        })
    }

    /// True when some pattern matches `topic`.
    pub fn allows(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, topic))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[Box<str>] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run() {
        assert!(glob_match("ticker.*", "ticker.AAPL"));
        assert!(glob_match("ticker.*", "ticker."));
        assert!(!glob_match("ticker.*", "ticker"));
        assert!(!glob_match("ticker.*", "trade.AAPL"));
        assert!(glob_match("*", "anything.at.all"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*.AAPL", "trade.AAPL"));
        assert!(!glob_match("*.AAPL", "trade.AAPLX"));
        assert!(glob_match("t*r.*L", "ticker.AAPL"));
        assert!(glob_match("a*b*c", "a-bb-b-c"));
        assert!(!glob_match("a*b*c", "a-bb-b-"));
        assert!(glob_match("**", "x"));
    }

    #[test]
    fn literals_are_exact_and_case_sensitive() {
        assert!(glob_match("ticker.AAPL", "ticker.AAPL"));
        assert!(!glob_match("ticker.AAPL", "ticker.aapl"));
        assert!(!glob_match("ticker.AAPL", "ticker.AAPLX"));
        assert!(!glob_match("ticker.AAPLX", "ticker.AAPL"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn backtracking_stays_cheap() {
        let text = "a".repeat(64);
        let pattern = format!("{}b", "*a".repeat(60));
        assert!(!glob_match(&pattern, &text));
    }

    #[test]
    fn entitlements_check_patterns() {
        let e = Entitlements::new(&["ticker.*", "trade.AAPL"]).unwrap();
        assert!(e.allows("ticker.MSFT"));
        assert!(e.allows("trade.AAPL"));
        assert!(!e.allows("trade.MSFT"));
        assert!(!Entitlements::new::<&str>(&[]).unwrap().allows("ticker.A"));
        assert!(matches!(
            Entitlements::new(&["ticker.[A]"]),
            Err(PatternError::Invalid(_))
        ));
        assert!(matches!(
            Entitlements::new(&[""]),
            Err(PatternError::Invalid(_))
        ));
        let many = vec!["a"; MAX_PATTERNS + 1];
        assert_eq!(Entitlements::new(&many), Err(PatternError::TooMany));
    }
}
