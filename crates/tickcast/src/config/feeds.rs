//! `[[feeds]]`: the list of feeds. Each entry is the ingest crate's [`FeedConfig`], which parses
//! and checks itself; this module adds the rules about the list as a whole (unique names, at most
//! one `http` feed) and the default synthetic feed when the list is empty.

use std::collections::HashSet;

use tickcast_ingest::synthetic::SyntheticConfig;
use tickcast_ingest::FeedConfig;

use super::ConfigError;

/// Checks every entry and the list; with no entry, the default synthetic feed.
pub(super) fn resolve(feeds: Vec<FeedConfig>) -> Result<Vec<FeedConfig>, ConfigError> {
    if feeds.is_empty() {
        return Ok(vec![FeedConfig::Synthetic(SyntheticConfig::default())]);
    }
    let mut names = HashSet::new();
    for f in &feeds {
        f.validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if !names.insert(f.name()) {
            return Err(ConfigError::Invalid(format!(
                "feed name {:?} is used twice; names label metrics and must be unique",
                f.name()
            )));
        }
    }
    let http = feeds
        .iter()
        .filter(|f| matches!(f, FeedConfig::Http(_)))
        .count();
    if http > 1 {
        return Err(ConfigError::Invalid(format!(
            "{http} http feeds configured; POST /publish can feed only one"
        )));
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use tickcast_ingest::replay::ReplayFormat;
    use tickcast_ingest::upstream::AdapterKind;

    use super::*;
    use crate::config::test_util::invalid;
    use crate::config::Config;

    /// The resolved feeds of a TOML text.
    fn resolved(toml: &str) -> Vec<FeedConfig> {
        Config::from_toml(toml)
            .and_then(Config::resolve)
            .unwrap()
            .feeds
    }

    #[test]
    fn feed_kinds_parse_with_defaults_and_are_checked() {
        let feeds = resolved(
            r#"
            [[feeds]]
            kind = "tcp"
            listen = "127.0.0.1:0"
            required = false
            [[feeds]]
            kind = "replay"
            path = "ticks.CSV"
            speed = 0
            loop = true
            [[feeds]]
            kind = "upstream"
            url = "ws://127.0.0.1:1/ws"
            adapter = "binance"
            subscribe = ["BTCUSDT"]
            max_idle_ms = 5000
            [[feeds]]
            kind = "http"
            "#,
        );
        assert_eq!(feeds.len(), 4);
        assert!(!feeds[0].required() && feeds[1].required());
        match &feeds[1] {
            FeedConfig::Replay(r) => {
                assert_eq!(r.format(), ReplayFormat::Csv, "format from the extension");
                assert!(r.looping && r.speed == 0.0);
            }
            other => panic!("{other:?}"),
        }
        match &feeds[2] {
            FeedConfig::Upstream(u) => {
                assert_eq!(u.adapter, AdapterKind::Binance);
                assert_eq!(u.backoff_min, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(feeds[2].max_idle(), Some(Duration::from_millis(5000)));

        assert!(
            invalid("[[feeds]]\nkind = \"http\"\n[[feeds]]\nkind = \"http\"\nname = \"h2\"")
                .contains("POST /publish")
        );
        assert!(invalid("[[feeds]]\nkind = \"http\"\n[[feeds]]\nkind = \"tcp\"\nname = \"http\"\nlisten = \"127.0.0.1:0\"")
            .contains("used twice"));
        assert!(invalid(
            "[[feeds]]\nkind = \"upstream\"\nname = \"up\"\nurl = \"http://x\"\nsubscribe = [\"a\"]"
        )
        .contains("feed up"));
        assert!(matches!(
            Config::from_toml("[[feeds]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\nbogus = 1"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn feed_tuning_and_tls_keys_have_defaults_and_are_checked() {
        let tcp = |extra: &str| {
            format!("[[feeds]]\nkind = \"tcp\"\nname = \"t\"\nlisten = \"127.0.0.1:0\"\n{extra}")
        };
        let up = |url: &str, extra: &str| {
            format!("[[feeds]]\nkind = \"upstream\"\nname = \"u\"\nurl = \"{url}\"\nsubscribe = [\"a\"]\n{extra}")
        };
        let plan = |toml: &str| resolved(toml).remove(0);

        // Defaults are the former constants.
        match plan(&tcp("")) {
            FeedConfig::Tcp(t) => {
                assert_eq!((t.read_buffer_bytes, t.queue_chunks), (65_536, 64))
            }
            other => panic!("{other:?}"),
        }
        match plan(&up("ws://127.0.0.1:1/ws", "")) {
            FeedConfig::Upstream(u) => {
                assert_eq!(u.connect_timeout, Duration::from_millis(10_000));
                assert_eq!(u.ca_file, None);
            }
            other => panic!("{other:?}"),
        }
        // Set values arrive in the feed's settings.
        match plan(&tcp("read_buffer_bytes = 4096\nqueue_chunks = 8")) {
            FeedConfig::Tcp(t) => assert_eq!((t.read_buffer_bytes, t.queue_chunks), (4096, 8)),
            other => panic!("{other:?}"),
        }
        match plan(&up(
            "wss://feed.example:8443/ws",
            "connect_timeout_ms = 2500\nca_file = \"/etc/tickcast/ca.pem\"",
        )) {
            FeedConfig::Upstream(u) => {
                assert_eq!(u.connect_timeout, Duration::from_millis(2500));
                assert_eq!(u.ca_file, Some(PathBuf::from("/etc/tickcast/ca.pem")));
            }
            other => panic!("{other:?}"),
        }

        // Out of range: the message names the feed, the key, the value and the range.
        let m = invalid(&tcp("read_buffer_bytes = 100"));
        assert!(
            m.contains("feed t") && m.contains("read_buffer_bytes is 100"),
            "{m}"
        );
        assert!(m.contains("1024 to 16777216"), "{m}");
        let m = invalid(&tcp("read_buffer_bytes = 1073741824"));
        assert!(m.contains("read_buffer_bytes"), "{m}");
        let m = invalid(&tcp("queue_chunks = 0"));
        assert!(
            m.contains("feed t") && m.contains("queue_chunks is 0, must be 1 to 65536"),
            "{m}"
        );
        let m = invalid(&up("ws://127.0.0.1:1/ws", "connect_timeout_ms = 99"));
        assert!(
            m.contains("feed u") && m.contains("connect_timeout_ms is 99, must be >= 100"),
            "{m}"
        );
        let m = invalid(&up("ws://127.0.0.1:1/ws", "ca_file = \"ca.pem\""));
        assert!(
            m.contains("feed u") && m.contains("only used with a wss:// url"),
            "{m}"
        );
        let m = invalid(&up("wss://127.0.0.1:1/ws", "ca_file = \"\""));
        assert!(m.contains("ca_file must not be empty"), "{m}");
        let m = invalid(&up("https://127.0.0.1:1/ws", ""));
        assert!(m.contains("ws:// or wss://"), "{m}");
        // Wrong types are parse errors.
        assert!(matches!(
            Config::from_toml(&tcp("queue_chunks = -1")),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn the_feeds_own_rules_apply_to_the_file() {
        // One rule set: what a feed's constructor refuses, the config refuses when resolved.
        let m = invalid("[[feeds]]\nkind = \"tcp\"\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nmax_line_bytes = 63");
        assert!(
            m.contains("feed t: max_line_bytes is 63, must be >= 64"),
            "{m}"
        );
        let m = invalid("[[feeds]]\nkind = \"synthetic\"\nsymbols = [\"A B\"]");
        assert!(m.contains("feed synthetic: symbols \"A B\""), "{m}");
        let m = invalid("[[feeds]]\nkind = \"synthetic\"\nsymbols = 0");
        assert!(m.contains("symbols must not be empty"), "{m}");
        let m = invalid(
            "[[feeds]]\nkind = \"upstream\"\nurl = \"ws://x/ws\"\nsubscribe = [\"a\"]\nchannel = \"a b\"",
        );
        assert!(m.contains("feed upstream: channel"), "{m}");
        let m = invalid("[[feeds]]\nkind = \"nats\"\nsubjects = [\"other.>\"]");
        assert!(m.contains("feed nats: subjects"), "{m}");
        let m = invalid("[[feeds]]\nkind = \"nats\"\nconnect_timeout_ms = 99");
        assert!(m.contains("connect_timeout_ms is 99"), "{m}");
        let m = invalid("[[feeds]]\nkind = \"http\"\nname = \"\"");
        assert!(m.contains("name must not be empty"), "{m}");
    }

    #[test]
    fn no_feed_means_the_default_synthetic_feed() {
        match &resolved("")[..] {
            [FeedConfig::Synthetic(s)] => {
                assert_eq!((s.name.as_str(), s.rate), ("synthetic", 1000.0))
            }
            other => panic!("{other:?}"),
        }
    }
}
