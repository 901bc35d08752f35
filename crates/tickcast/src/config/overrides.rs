//! The command line and `TICKCAST_*` environment on top of the file ([`Overrides`],
//! [`Config::apply`]). Values are checked with the rest of the config by [`Config::resolve`].

use std::net::SocketAddr;
use std::path::PathBuf;

use tickcast_bus::OverflowPolicy;
use tickcast_ingest::replay::ReplayConfig;
use tickcast_ingest::synthetic::{Symbols, SyntheticConfig};
use tickcast_ingest::FeedConfig;

use super::{Config, ConfigError, Role};

/// Overrides from the command line or environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--symbols`
    pub symbols: Option<Symbols>,
    /// `--rate`
    pub rate: Option<f64>,
    /// `--workers`
    pub workers: Option<usize>,
    /// `--policy`
    pub policy: Option<OverflowPolicy>,
    /// `--replay FILE`: adds a looping real-time replay feed of FILE.
    pub replay: Option<PathBuf>,
    /// `--role`
    pub role: Option<Role>,
    /// `--nats-url`: the `[nats]` url (ingest role).
    pub nats_url: Option<String>,
    /// `--flush-interval-ms`
    pub flush_interval_ms: Option<u64>,
    /// `--adaptive-flush-max-ms`
    pub adaptive_flush_max_ms: Option<u64>,
}

impl Config {
    /// Applies CLI/env overrides. `--symbols`/`--rate` configure the first synthetic feed (the
    /// default one when the file has no feed at all); with feeds but no synthetic one they are an
    /// error rather than a synthetic feed slipped in beside the configured ones. Ranges are
    /// checked by [`Config::resolve`].
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = o.listen {
            self.server.listen = listen;
        }
        if let Some(w) = o.workers {
            self.server.workers = w;
        }
        if let Some(p) = o.policy {
            self.backpressure.policy = p;
        }
        if let Some(ms) = o.flush_interval_ms {
            self.server.flush_interval_ms = ms;
        }
        if let Some(ms) = o.adaptive_flush_max_ms {
            self.server.adaptive_flush_max_ms = ms;
        }
        if let Some(path) = o.replay {
            self.feeds.push(FeedConfig::Replay(ReplayConfig {
                looping: true,
                ..ReplayConfig::new(path)
            }));
        }
        if let Some(role) = o.role {
            self.server.role = role;
        }
        if let Some(url) = o.nats_url {
            self.nats.url = url;
        }
        if o.symbols.is_some() || o.rate.is_some() {
            let has_synthetic = self
                .feeds
                .iter()
                .any(|f| matches!(f, FeedConfig::Synthetic(_)));
            if !has_synthetic && !self.feeds.is_empty() {
                return Err(ConfigError::Invalid(
                    "--symbols and --rate configure the synthetic feed, and the config file has \
                     none; add a [[feeds]] entry with kind = \"synthetic\" or drop the flags"
                        .into(),
                ));
            }
            if !has_synthetic {
                self.feeds
                    .push(FeedConfig::Synthetic(SyntheticConfig::default()));
            }
            if let Some(FeedConfig::Synthetic(synthetic)) = self
                .feeds
                .iter_mut()
                .find(|f| matches!(f, FeedConfig::Synthetic(_)))
            {
                if let Some(s) = o.symbols {
                    synthetic.symbols = s;
                }
                if let Some(r) = o.rate {
                    synthetic.rate = r;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_without_a_synthetic_feed_are_refused() {
        let mut c = Config::from_toml("[[feeds]]\nkind = \"http\"").unwrap();
        let err = c
            .apply(Overrides {
                symbols: Some(Symbols::Count(3)),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("has none"), "{err}");
        assert_eq!(c.feeds.len(), 1, "no synthetic feed slipped in");
    }

    #[test]
    fn overrides_configure_the_synthetic_feed() {
        let mut c = Config::default();
        c.apply(Overrides {
            symbols: Some(Symbols::Count(3)),
            rate: Some(10.0),
            ..Default::default()
        })
        .unwrap();
        let synthetic = |c: &Config| match c.clone().resolve().unwrap().feeds.remove(0) {
            FeedConfig::Synthetic(s) => s,
            other => panic!("{other:?}"),
        };
        let feed = synthetic(&c);
        assert_eq!(feed.symbols.names(), vec!["SYM0000", "SYM0001", "SYM0002"]);
        assert_eq!(feed.rate, 10.0);
        let c =
            Config::from_toml("[[feeds]]\nkind = \"synthetic\"\nsymbols = [\"AAPL\"]\nrate = 5")
                .unwrap();
        assert_eq!(synthetic(&c).symbols.names(), vec!["AAPL"]);
    }

    #[test]
    fn overridden_values_are_checked_when_resolving() {
        let mut c = Config::default();
        c.apply(Overrides {
            workers: Some(100),
            rate: Some(-1.0),
            ..Default::default()
        })
        .unwrap();
        let err = c.clone().resolve().unwrap_err().to_string();
        assert!(err.contains("server.workers is 100"), "{err}");
        c.server.workers = 2;
        let err = c.resolve().unwrap_err().to_string();
        assert!(err.contains("feed synthetic: rate is -1"), "{err}");
    }

    #[test]
    fn replay_adds_a_looping_feed() {
        let mut c = Config::from_toml("[[feeds]]\nkind = \"http\"").unwrap();
        c.apply(Overrides {
            replay: Some("day.csv".into()),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Default::default()
        })
        .unwrap();
        match &c.feeds[1] {
            FeedConfig::Replay(r) => {
                assert!(r.looping && r.speed == 1.0 && r.name == "replay");
                assert_eq!(r.format(), tickcast_ingest::replay::ReplayFormat::Csv);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.server.listen.port(), 0);
    }
}
